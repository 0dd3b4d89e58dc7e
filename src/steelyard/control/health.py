"""Health of one pool's servers, kept by the control plane: active checks, passive ejection
reports from the data plane, slow start, draining, and publishing the result.

``PoolHealthKeeper`` owns the pure ``core.health.PoolHealth`` of a pool and is the only
writer of its ``PoolRuntime``'s snapshot after start. It runs the pool's active checks
(``checks.CheckScheduler``: one heap and one task per pool, once per balancer), a tick
every ``TICK`` seconds (ejections running out, slow-start windows ending, drains
finishing), and takes ``PoolRuntime.failing`` reports. Every
change of a server's standing is logged with its reason (WARNING, so it shows by
default) and kept on the server's state for status output.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from ..core.balancing.consistent_hash import ConsistentHash
from ..core.health import DRAIN, EjectionPolicy, Hysteresis, PoolHealth, ServerState
from ..core.model import Server
from ..proxy.pool import PoolRuntime
from ..units import format_duration
from .checks import CheckScheduler

log = logging.getLogger("steelyard.health")
TICK = 0.25
BATCH_FROM = 100  # pools of more servers publish check results in batches ...
BATCH = 0.05  # ... at most this many seconds after the first change


class PoolHealthKeeper:
    def __init__(
        self,
        pool: PoolRuntime,
        cfg: Any,
        states: list[ServerState],
        *,
        loop: asyncio.AbstractEventLoop,
        rng: random.Random,
    ) -> None:
        self.pool, self.cfg, self.loop, self.rng = pool, cfg, loop, rng
        outlier = cfg.outlier
        self.health = PoolHealth(
            states,
            ejection=EjectionPolicy(outlier.base_ejection, outlier.max_ejection, outlier.max_ejection_percent),
            panic_threshold=cfg.panic_threshold,
        )
        # slow start makes no sense for hashing: a key's server would move twice
        hashing = isinstance(pool.algorithm, type) and issubclass(pool.algorithm, ConsistentHash)
        self.slow_start = 0.0 if hashing or cfg.slow_start is None else cfg.slow_start
        self.ramping = False  # the published snapshot has servers in slow start
        self.algorithm_name = cfg.algorithm
        self.sampled_at = loop.time()
        self.samples: dict[str, tuple[int, float, int]] = {}  # server -> (completed, latency sum, count)
        self.rates: dict[str, tuple[float, float | None]] = {}  # server -> (req/s, mean latency ms)
        self.journal: Any = None  # a deque of (Unix time, pool, event) the dashboard lists, when set
        pool.eject_after, pool.eject_5xx = outlier.consecutive_failures, outlier.consecutive_5xx
        pool.on_failing = self.on_failing
        self.tasks: list[asyncio.Task] = []
        self.pending: asyncio.Handle | None = None  # a publish_soon not yet run
        self.checks: CheckScheduler | None = None  # active checks, once started
        sticky = getattr(cfg, "sticky", None)
        self.drain_grace = sticky.drain_grace if sticky is not None else 0.0  # sticky clients stay this long
        self.drain_since: dict[str, float] = {}  # server name -> when its drain began
        # (with workers) called after each publish with (keeper, servers, ramping, draining)
        self.on_publish: Any = None

    @classmethod
    def from_config(cls, pool: PoolRuntime, cfg: Any, servers: list[Server], **kw: Any) -> PoolHealthKeeper:
        check = cfg.health
        states = [
            ServerState(
                s, backup=sc.backup, admin=sc.state, check=Hysteresis(check.rise, check.fall) if check else None
            )
            for s, sc in zip(servers, cfg.servers)
        ]
        return cls(pool, cfg, states, **kw)

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        now = self.loop.time()
        self.drain_since = {st.server.name: now for st in self.health.states if st.admin == DRAIN}
        self.publish()
        if self.cfg.health is not None:
            self.checks = CheckScheduler(self.cfg.health, self._checked, loop=self.loop, rng=self.rng)
            self.tasks.append(self.checks.start(self.health.states))
        self.tasks.append(self.loop.create_task(self._tick_loop()))

    def stop(self) -> None:
        if self.checks is not None:
            self.checks.stop()
            self.checks = None
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    def _checked(self, st: ServerState, ok: bool | None, why: str) -> None:
        """An active check's result (``checks.CheckScheduler``); None: no verdict (the check could
        not run for lack of local resources, ``probe``)."""
        if ok is None:
            return
        if self.health.check_result(st, ok, why, self.loop.time()):
            self.publish_soon()
        if self.pending is None:  # (a batched change is logged once it is published)
            self._log()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.tick()

    def _measure(self, now: float) -> None:
        """Once a second: each server's request rate and mean latency over the last second."""
        if now - self.sampled_at < 1.0:
            return
        span, self.sampled_at = now - self.sampled_at, now
        samples, rates, idle = self.samples, self.rates, (0.0, None)
        for st in self.health.states:
            load = st.server.load
            name = st.server.name
            done = load.requests + load.failures
            was = samples.get(name)
            if was is not None and was[0] == done:  # nothing completed: skip the sums (large pools)
                rates[name] = idle
                continue
            total, count = load.latency_sum, sum(load.latency)
            samples[name] = (done, total, count)
            if was is not None:
                n = count - was[2]
                rates[name] = ((done - was[0]) / span, (total - was[1]) / n * 1000 if n else None)

    def tick(self) -> None:
        now = self.loop.time()
        self._measure(now)
        changed = self.health.tick(now)
        grace_over = any(now - since >= self.drain_grace for _, since in self.pool.draining.values())
        if changed or grace_over or (self.ramping and not self.health.ramping(now, self.slow_start)):
            self.publish()  # (also when the last slow-start window closed: the bare balancer again)
        self.health.drained_now()
        self._forget_removed()
        self._log()

    # -- changes -----------------------------------------------------------------

    def on_failing(self, server: Server, why: str) -> None:
        """The data plane saw ``server`` fail too often in a row (passive health)."""
        st = self.health.state_of(server)
        server.load.fail_streak = server.load.err_streak = 0  # counting starts over either way
        if st is not None and self.health.eject(st, why, self.loop.time()):
            self.publish()
        self._log()

    def set_state(self, name: str, admin: str) -> ServerState:
        """ready / drain / maint for the server called ``name`` (drain: no new requests)."""
        st = self.state(name)
        st.removing = False  # (a server being removed that is set ready again stays)
        now = self.loop.time()
        if admin == DRAIN and st.admin != DRAIN:
            self.drain_since[name] = now
        if self.health.set_admin(st, admin, now):
            self.publish()
        self.health.drained_now()
        self._log()
        return st

    # -- runtime changes (admin API) -------------------------------------------

    def state(self, name: str) -> ServerState:
        st = next((s for s in self.health.states if s.server.name == name), None)
        if st is None:
            raise KeyError(f"pool {self.pool.name} has no server {name!r}")
        return st

    def add_server(
        self, server: Server, *, backup: bool = False, admin: str = "ready", origin: str = "runtime"
    ) -> ServerState:
        """A new server, checked (when the pool has checks) from now on; usable at once unless
        its first check fails."""
        check = self.cfg.health
        st = ServerState(
            server, backup=backup, admin=admin, check=Hysteresis(check.rise, check.fall) if check else None
        )
        st.origin = origin
        st.reason, st.changed_at = f"added ({origin})", self.loop.time()
        self.health.states.append(st)
        if self.checks is not None:
            self.checks.add(st)
        self.publish()
        self.health.events.append(f"server {server.name}: added at {server.address}")
        self._log()
        return st

    def replace_server(self, st: ServerState, server: Server) -> None:
        """Swap ``st``'s server for ``server`` (same name; e.g. another weight), keeping its load."""
        st.server = server
        self.publish()

    def set_algorithm(self, name: str, cls: type) -> None:
        self.pool.algorithm = cls
        hashing = issubclass(cls, ConsistentHash)
        self.slow_start = 0.0 if hashing or self.cfg.slow_start is None else self.cfg.slow_start
        self.algorithm_name = name
        self.publish()

    def remove_server(self, name: str) -> None:
        """Take a server out for good: it is drained first, then forgotten once idle (``tick``)."""
        st = self.state(name)
        st.removing = True
        if st.admin != DRAIN:
            now = self.loop.time()
            self.drain_since[name] = now  # (sticky clients get the drain grace here too)
            self.health.set_admin(st, DRAIN, now)
            self.publish()
        self.tick()

    def _forget_removed(self) -> None:
        gone = [st for st in self.health.states if st.removing and not st.server.load.active]
        for st in gone:
            self.health.states.remove(st)
            if self.checks is not None:
                self.checks.forget(st)
            self.health.events.append(f"server {st.server.name}: removed")
        if gone:
            self.publish()

    def publish_soon(self) -> None:
        """``publish`` for a check result: at once in pools of up to ``BATCH_FROM`` servers;
        in larger ones, where a publish costs milliseconds and many servers can change
        together (a rack going down must not be thousands of publishes), once for every
        change until it runs, ``BATCH`` seconds after the first."""
        if len(self.health.states) <= BATCH_FROM:
            self.publish()
        elif self.pending is None:
            self.pending = self.loop.call_later(BATCH, self._publish_pending)

    def _publish_pending(self) -> None:
        self.pending = None
        self.publish()
        self._log()

    def publish(self) -> None:
        if self.pending is not None:  # (this publish covers the pending one)
            self.pending.cancel()
            self.pending = None
        now = self.loop.time()
        servers = self.health.usable()
        ramping = self.health.ramping(now, self.slow_start) if self.slow_start else {}
        draining = None
        if self.drain_grace:  # sticky clients of a draining server stay for the grace (proxy.sticky)
            draining = {
                st.server.name: (st.server, since)
                for st in self.health.states
                if st.admin == DRAIN
                and st.healthy
                and now - (since := self.drain_since.get(st.server.name, now)) < self.drain_grace
            }
        self.pool.publish(servers, ramping, self.slow_start, self.cfg.slow_start_floor, draining)
        if self.on_publish is not None:
            self.on_publish(self, servers, ramping, draining)
        self.ramping = bool(ramping)
        if not servers:
            self.health.events.append("no server is usable: requests get 503")

    def _log(self) -> None:
        events = self.health.events
        for line in events:
            log.warning("pool %s: %s", self.pool.name, line)
            if self.journal is not None:
                self.journal.append((time.time(), self.pool.name, line))
        events.clear()

    # -- status --------------------------------------------------------------------

    def status(self, states: list[ServerState] | None = None) -> list[dict[str, Any]]:
        """A row per server (of ``states``: default every one) for the status API."""
        now = self.loop.time()
        return [self.row(st, now) for st in (self.health.states if states is None else states)]

    def row(self, st: ServerState, now: float) -> dict[str, Any]:
        """One server as the API shows it."""
        load = st.server.load
        rate, latency = self.rates.get(st.server.name, (0.0, None))
        return {
            "server": st.server.name,
            "address": st.server.address,
            "status": st.status,
            "backup": st.backup,
            "weight": st.server.weight,
            "active": load.active,
            "remote_active": load.remote,  # ([cluster]: in flight through the other balancers)
            "requests": load.requests,
            "failures": load.failures,
            "reason": st.reason,
            "origin": st.origin,
            "removing": st.removing,
            "latency_sum_s": round(load.latency_sum, 6),
            "latency_count": sum(load.latency),
            "rate": round(rate, 2),
            "latency_ms": _round(latency),
            "since": format_duration(max(0.0, now - st.changed_at)) if st.changed_at else "start",
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
