"""The control process of a balancer with ``workers = N``.

It binds every listener's socket once (``holder.SocketHolder``: the workers inherit them) and
runs what there is one of: health checks, the admin API, DNS, the state file, the cluster
link. It serves no traffic itself.

``WorkerHub``:
- starts ``N`` workers (``python -m steelyard.workers.worker``) and waits until each serves;
- restarts a worker that exits on its own (logged at WARNING, with a back-off when it keeps
  dying young), after zeroing its row of in-flight counts;
- sends each pool's published health (``view``) to every worker whenever the health keeper
  publishes, and takes the workers' passive-health reports back to the keeper;
- gathers the workers' counters (``refresh``: every second, and before /metrics or a status
  read) into the control process's own load records, keeping what exited workers counted, so
  every counter only grows;
- on a reload, starts a new generation of workers with the new configuration, then lets the
  old one finish its in-flight work and exit (the listening sockets never close).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

from ..core.model import Server
from .channel import Channel, add_listener_rows, apply_pool_totals, sum_pool_reports
from .handle import Worker
from .slots import COLUMNS, SlotTable, TotalLoad

log = logging.getLogger("steelyard.workers")
START_TIMEOUT = 60.0  # a worker not serving by then is a failed start
STATS_TIMEOUT = 2.0
YOUNG = 2.0  # a worker dying sooner than this after its start is restarted with a growing delay


class WorkerHub:
    def __init__(self, runtime: Any, count: int, config_text: str) -> None:
        self.rt = runtime
        self.count = count
        self.config_text = config_text  # what the serving generation (and its restarts) runs
        self.slots = SlotTable()
        self.secret = os.urandom(32).hex()  # sticky cookies signed alike by every worker (no secret configured)
        self.workers: list[Worker] = []
        self.generation = 1  # the serving generation (a reload's new one becomes it once it serves)
        self.views: dict[str, dict] = {}  # pool -> the last view published (sent to new workers)
        self.retired: dict[str, dict] = {}  # counters of workers that have exited (pool -> totals)
        self.retired_listeners: dict[str, list] = {}  # and their listener counters (name -> totals)
        self.listener_totals: dict[str, list] = {}  # every worker's listener counters, summed
        self.open: dict[str, int] = {}  # open client connections per listener, over the workers
        self.restarts = 0
        self.closing = False
        self.rolling = False  # a reload is under way (Runtime.reload sets it)
        self.spawning = 0
        self._asks = 0
        self._deaths: dict[int, int] = {}  # worker index -> deaths in a row while young
        self._refresher: asyncio.Task | None = None
        self.queued: dict[str, int] = {}  # pool -> requests waiting in the workers' queues

    # -- what the workers are told -----------------------------------------------------

    def column(self, pool: str, server: Server) -> int:
        """The shared-counter column of ``server`` (the same across a weight change, as its load)."""
        col = self.slots.column(_key(pool, server))
        load = server.load
        if not isinstance(load, TotalLoad) or load.col != col:
            object.__setattr__(server, "load", TotalLoad(self.slots.cells, col))
        return col

    def on_publish(self, keeper: Any, servers: Any, ramping: dict, draining: dict | None) -> None:
        """The health keeper of a pool published: tell every worker."""
        pool = keeper.pool.name
        now = asyncio.get_running_loop().time()

        def ref(s: Server) -> list:
            return [s.name, s.host, s.port, s.weight, s.max_conns, self.column(pool, s)]

        for st in keeper.health.states:
            self.column(pool, st.server)
        self.views[pool] = view = {
            "algorithm": keeper.algorithm_name,
            "servers": [ref(s) for s in servers],
            "ramping": [[s.name, now - since] for s, since in (ramping or {}).items()],
            "window": keeper.slow_start,
            "floor": keeper.cfg.slow_start_floor,
            "draining": [[ref(s), now - since] for s, since in (draining or {}).values()],
        }
        self._send({"op": "pools", "views": {pool: view}})
        self._release_columns()

    def _send(self, message: dict) -> None:
        for w in self.workers:
            if w.channel is not None and not w.stopping:  # (a stopping worker reads no more)
                w.channel.send(message)

    def _release_columns(self) -> None:
        if self.rolling or len({w.generation for w in self.workers}) > 1:
            return  # (an older generation may still count on a server the current one dropped)
        in_use = {_key(name, st.server) for name, keeper in self.rt.health.items() for st in keeper.health.states}
        self.slots.release_unused(in_use)

    # -- starting and supervising ------------------------------------------------------

    async def start(self) -> None:
        for i in range(self.count):
            self.workers.append(await self._spawn(i, self.generation, self.config_text, initial=True))
        await self._wait_ready(self.workers)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _wait_ready(self, workers: list[Worker]) -> None:
        done, pending = await asyncio.wait([w.ready for w in workers], timeout=START_TIMEOUT)
        for fut in done:
            fut.result()  # (a worker that exited before serving: its reason)
        if pending:
            raise RuntimeError(f"{len(pending)} worker(s) not serving after {START_TIMEOUT:.0f}s")

    async def _spawn(self, index: int, generation: int, text: str, initial: bool = False) -> Worker:
        self.spawning += 1
        try:
            w = Worker(index, generation, self.slots.take_row(), initial)
            parent, child = socket.socketpair()
            listeners, fds = {}, [child.fileno(), self.slots.fd]
            for name, holder in self.rt.listeners.items():
                if holder.sock is not None:
                    fds.append(holder.sock.fileno())
                listeners[name] = {"fd": holder.sock.fileno() if holder.sock is not None else None, "port": holder.port}
            try:  # (a session of its own: a terminal's Ctrl-C reaches the control process only)
                w.proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "steelyard.workers.worker",
                    str(child.fileno()),
                    pass_fds=fds,
                    start_new_session=True,
                )
            except BaseException:
                parent.close()
                self.slots.give_back_row(w.row)
                raise
            finally:
                child.close()
            w.channel = await Channel.open(parent)
            w.channel.send(
                {
                    "op": "hello",
                    "index": index,
                    "generation": generation,
                    "row": w.row,
                    "slots_fd": self.slots.fd,
                    "config": text,
                    "source": self.rt.config.source,
                    "listeners": listeners,
                    "secret": self.secret,
                    "pools": self.views,
                    "log_level": logging.getLogger().getEffectiveLevel(),
                }
            )
        finally:
            self.spawning -= 1
        loop = asyncio.get_running_loop()
        w.reader = loop.create_task(self._read(w))
        loop.create_task(self._watch(w))
        log.info("worker %d (pid %d) started", index, w.pid)
        return w

    async def _read(self, w: Worker) -> None:
        assert w.channel is not None
        while (msg := await w.channel.receive()) is not None:
            op = msg.get("op")
            if op == "ready":
                if not w.ready.done():
                    w.ready.set_result(None)
            elif op == "failed":  # (it could not start: why, before it exits)
                w.failure = msg.get("why", "")
            elif op == "failing":
                self._failing(msg["pool"], msg["server"], msg["why"])
            elif op in ("stats", "bye"):
                w.stats = msg["stats"]
                w.listeners, w.open = msg.get("listeners", {}), msg.get("open", {})
                fut = w.asked.pop(msg.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def _failing(self, pool: str, name: str, why: str) -> None:
        keeper = self.rt.health.get(pool)
        if keeper is None:
            return
        st = next((st for st in keeper.health.states if st.server.name == name), None)
        if st is not None:
            keeper.on_failing(st.server, why)

    async def _watch(self, w: Worker) -> None:
        assert w.proc is not None
        code = await w.proc.wait()
        if w.reader is not None:  # (its last lines, "bye" with its final counters among them, are read first)
            await asyncio.wait([w.reader], timeout=STATS_TIMEOUT)
        self._add_retired(w.stats)
        self.retired_listeners = add_listener_rows([self.retired_listeners, w.listeners])
        self.slots.give_back_row(w.row)
        if w in self.workers:
            self.workers.remove(w)
        if w.channel is not None:
            w.channel.close()
        if not w.ready.done():
            why = f": {w.failure}" if w.failure else ""
            w.ready.set_exception(RuntimeError(f"worker {w.index} could not start ({_how(code)}){why}"))
        served = w.ready.exception() is None
        if w.stopping or self.closing or w.generation != self.generation or (w.initial and not served):
            log.info("worker %d (pid %d) %s", w.index, w.pid, _how(code))
            return
        loop = asyncio.get_running_loop()
        young = loop.time() - w.started < YOUNG
        deaths = self._deaths[w.index] = self._deaths.get(w.index, 0) + 1 if young else 0
        delay = min(5.0, 0.1 * 2**deaths) if deaths else 0.0
        why = f" ({w.failure})" if w.failure else ""
        log.warning(
            "worker %d (pid %d) %s%s; starting another%s",
            w.index,
            w.pid,
            _how(code),
            why,
            f" in {delay:.1f}s" if delay else "",
        )
        if delay:
            await asyncio.sleep(delay)
        if self.closing or w.generation != self.generation:
            return
        self.restarts += 1
        try:
            new = await self._spawn(w.index, w.generation, self.config_text)
        except (OSError, RuntimeError) as exc:
            log.error("worker %d could not be started again: %s", w.index, exc)
            return
        self.workers.append(new)
        if self.closing or new.generation != self.generation:
            self._stop(new)  # (a stop or a reload began while it started)
            return
        try:
            await asyncio.wait_for(asyncio.shield(new.ready), START_TIMEOUT)
        except (TimeoutError, RuntimeError):
            if new.proc is not None and new.proc.returncode is None:
                log.error("worker %d (pid %d) not serving after %.0fs: killed", new.index, new.pid, START_TIMEOUT)
                new.proc.kill()  # (its watcher starts another)

    def push_remote(self) -> None:
        """[cluster]: other balancers' in-flight counts are in the shared block already (row 0,
        written through ``TotalLoad.remote``); their mean response times go to every worker."""
        by_column = {
            str(st.server.load.col): st.server.load.remote_ewma
            for keeper in self.rt.health.values()
            for st in keeper.health.states
            if isinstance(st.server.load, TotalLoad) and st.server.load.remote_ewma
        }
        self._send({"op": "remote", "ewma": by_column})

    # -- counters ------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.refresh()
            self._release_columns()

    async def refresh(self) -> None:
        """Ask every serving worker for its counters, then total them into the control
        process's load records (a worker that does not answer in time counts as last seen)."""
        waits = []
        for w in list(self.workers):
            if w.channel is None or not w.ready.done() or w.stopping:
                continue  # (a stopping worker is busy finishing: its last counters come with its goodbye)
            self._asks += 1
            w.asked[self._asks] = fut = asyncio.get_running_loop().create_future()
            w.channel.send({"op": "stats", "id": self._asks})
            waits.append(fut)
        if waits:
            await asyncio.wait(waits, timeout=STATS_TIMEOUT)
        self._apply([self.retired] + [w.stats for w in self.workers])

    def _add_retired(self, stats: dict) -> None:
        self.retired = sum_pool_reports([self.retired, stats])

    def _apply(self, reports: list[dict]) -> None:
        apply_pool_totals(self.rt.health, reports)
        self.listener_totals = add_listener_rows([self.retired_listeners] + [w.listeners for w in self.workers])
        self.open = {n: sum(w.open.get(n, 0) for w in self.workers) for n in self.listener_totals}
        self.queued = {name: sum(r.get(name, {}).get("queued", 0) for r in reports[1:]) for name in self.rt.health}

    # -- reload and stop ---------------------------------------------------------------

    async def roll(self, config_text: str, count: int) -> None:
        """A reload: a new generation of ``count`` workers with ``config_text``; once every one
        serves it becomes the serving generation and the previous ones finish and exit. If one
        cannot start, the new ones go and nothing changes (restarts keep the previous text)."""
        self.views = {name: view for name, view in self.views.items() if name in self.rt.health}
        pending = self.generation + 1
        new: list[Worker] = []
        try:
            for i in range(count):
                new.append(await self._spawn(i, pending, config_text, initial=True))
                self.workers.append(new[-1])
            await self._wait_ready(new)
        except BaseException:
            log.error("reload: the new workers did not start; the previous ones keep serving")
            for w in new:
                if w.ready.done() and w.ready.exception() is None:
                    self._stop(w)
                elif w.proc is not None and w.proc.returncode is None:
                    w.proc.kill()
            raise
        self.generation, self.config_text, self.count = pending, config_text, count
        old = [w for w in self.workers if w.generation != pending]
        for w in old:
            self._stop(w)
        asyncio.get_running_loop().create_task(self._say_when_gone(old, new))

    async def _say_when_gone(self, old: list[Worker], new: list[Worker]) -> None:
        procs = [w.proc for w in old if w.proc is not None]
        if procs:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs])
        print(
            f"steelyard: workers of generation {new[0].generation} serving (pids "
            f"{', '.join(str(w.pid) for w in new)}); the previous ones (pids "
            f"{', '.join(str(p.pid) for p in procs)}) have finished",
            flush=True,
        )

    def _stop(self, w: Worker) -> None:
        w.stopping = True
        if w.channel is not None:
            w.channel.send({"op": "stop"})

    async def stop(self, grace: float) -> None:
        """Every worker finishes its in-flight work within ``grace`` and exits (killed 5 s after)."""
        self.closing = True
        if self._refresher is not None:
            self._refresher.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace + 5.0
        while (self.workers or self.spawning) and loop.time() < deadline:
            for w in self.workers:
                if not w.stopping:
                    self._stop(w)
            waits = [asyncio.ensure_future(w.proc.wait()) for w in self.workers if w.proc is not None]
            if waits:
                await asyncio.wait(waits, timeout=deadline - loop.time())
            await asyncio.sleep(0.05 if self.spawning else 0)  # (the watchers forget the exited ones)
        for w in list(self.workers):
            if w.proc is not None and w.proc.returncode is None:
                w.proc.kill()
                await asyncio.wait([asyncio.ensure_future(w.proc.wait())], timeout=5.0)
        # (the shared block stays mapped until this process exits: watchers may still zero rows)

    def status(self) -> list[dict[str, Any]]:
        now = asyncio.get_running_loop().time()
        return [
            {
                "index": w.index,
                "pid": w.pid,
                "generation": w.generation,
                "row": w.row,
                "serving": w.ready.done() and w.ready.exception() is None,
                "stopping": w.stopping,
                "uptime_s": round(now - w.started, 3),
                "active": sum(self.slots.cells[w.row * COLUMNS + c] for c in self.slots.columns.values()),
            }
            for w in sorted(self.workers, key=lambda w: (w.generation, w.index))
        ]


def _key(pool: str, server: Server) -> tuple:
    """What a shared-counter column belongs to: a server's pool, name and address."""
    return (pool, server.name, server.host, server.port)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"
