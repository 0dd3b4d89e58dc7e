"""What the dashboard reads: the last 15 minutes of each listener's and pool's figures, kept in
the control process (so a fresh page shows history), an overview, a page of servers, and the
recent events.

``History`` samples every ``INTERVAL`` seconds into a ring of ``SAMPLES`` entries per listener
and pool: responses/s, errors/s (5xx responses: the servers' and steelyard's own, such as the
502 after a connect failure), failed tries/s (connect failures, resets, timeouts, retried or
not), p50 and p99 latency (ms, from the response-time histogram's buckets over the interval,
interpolated as Prometheus' ``histogram_quantile`` does) and open connections (listeners) or
requests in flight (pools). A listener's failed tries and latency are those of the pools it
routes to. Sampling reads counters the data plane keeps anyway;
it costs O(servers) every interval and nothing per request. Servers have no history here (a
10,000-server pool would make it large): their table shows the keeper's rate of the last second.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .. import __version__
from ..core.model import LATENCY_BOUNDS
from .metrics import frontend_rows

INTERVAL = 2.0  # seconds between samples
SAMPLES = int(15 * 60 / INTERVAL)  # 15 minutes
PAGE_MAX = 500  # servers per page at most
JOURNAL = 500  # recent events kept (state changes, runtime changes, reloads)
_BUCKETS = len(LATENCY_BOUNDS) + 1


def quantile(q: float, counts: list[int]) -> float | None:
    """The ``q`` quantile (seconds) of the histogram ``counts`` (per bucket of ``LATENCY_BOUNDS``,
    the last one beyond them); None when it is empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound, n in zip(LATENCY_BOUNDS, counts):
        if n and seen + n >= rank:
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = bound
    return LATENCY_BOUNDS[-1]  # (in the bucket beyond the last bound: its lower edge)


def _pool_reading(keeper: Any) -> tuple[int, int, int, int, list[int]]:
    """(responses, 5xx responses, failed tries, in flight, latency buckets) of a pool, cumulative."""
    done = errors = failures = active = 0
    hist = [0] * _BUCKETS
    for st in keeper.health.states:
        load = st.server.load
        done += load.requests
        errors += load.by_class[5]
        failures += load.failures
        active += load.active
        for i, n in enumerate(load.latency):
            hist[i] += n
    answered = keeper.pool.answered
    done += sum(answered.values())
    errors += sum(n for code, n in answered.items() if code >= 500)
    return done, errors, failures, active, hist


def listener_pools(rt: Any) -> dict[str, list[str]]:
    """Listener name -> the pools it sends to (its default pool first)."""
    out = {}
    for lc in rt.config.listeners:
        pools = [lc.pool, *(r.pool for r in getattr(lc, "routes", ()) or ())]
        out[lc.name] = list(dict.fromkeys(p for p in pools if p))
    return out


class History:
    """A ring of samples per listener and pool (see the module docstring)."""

    def __init__(self, rt: Any, interval: float = INTERVAL, samples: int = SAMPLES) -> None:
        self.rt, self.interval = rt, interval
        self.samples = samples
        # ("listener"|"pool", name) -> samples (t, responses/s, 5xx/s, failed tries/s, p50, p99, active)
        self.rings: dict[tuple[str, str], deque] = {}
        self.last: dict[tuple[str, str], tuple] = {}  # the cumulative reading of the previous sample
        self.task: asyncio.Task | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sample(time.time())  # (the first reading: rates start with the next)
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.rt.refresh_stats()  # (with workers: their counters first)
                self.sample(time.time())
            except Exception:  # noqa: BLE001  (a sample lost is no reason to stop sampling)
                import logging

                logging.getLogger("steelyard").exception("dashboard history: a sample failed")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def sample(self, now: float) -> None:
        rt = self.rt
        readings: dict[tuple[str, str], tuple] = {}
        pools: dict[str, tuple] = {}
        for name, keeper in rt.health.items():
            done, errors, failures, active, hist = pools[name] = _pool_reading(keeper)
            readings[("pool", name)] = (now, done, errors, failures, active, hist)
        routed = listener_pools(rt)
        for name, (row, open_now) in frontend_rows(rt).items():
            hist, failures = [0] * _BUCKETS, 0
            for pool in routed.get(name, ()):
                if pool in pools:
                    failures += pools[pool][2]
                    for i, n in enumerate(pools[pool][4]):
                        hist[i] += n
            codes = row[4:]
            done = sum(codes) if rt.listeners[name].mode == "http" else row[0]  # (TCP: connections)
            readings[("listener", name)] = (now, done, codes[5], failures, open_now, hist)
        for key in [k for k in self.rings if k not in readings]:  # (gone after a reload)
            del self.rings[key]
            self.last.pop(key, None)
        for key, reading in readings.items():
            was = self.last.get(key)
            self.last[key] = reading
            if was is None:
                continue
            span = max(1e-6, reading[0] - was[0])
            deltas = [max(0, a - b) for a, b in zip(reading[5], was[5])]
            p50, p99 = quantile(0.5, deltas), quantile(0.99, deltas)
            ring = self.rings.get(key)
            if ring is None:
                ring = self.rings[key] = deque(maxlen=self.samples)
            ring.append(
                (
                    round(now, 3),
                    round(max(0, reading[1] - was[1]) / span, 3),
                    round(max(0, reading[2] - was[2]) / span, 3),
                    round(max(0, reading[3] - was[3]) / span, 3),
                    None if p50 is None else round(p50 * 1000, 3),
                    None if p99 is None else round(p99 * 1000, 3),
                    reading[4],
                )
            )

    def view(self, since: float = 0.0) -> dict[str, Any]:
        """Samples newer than ``since`` (Unix seconds), per listener and per pool."""
        out: dict[str, Any] = {
            "interval_s": self.interval,
            "window_s": self.interval * self.samples,
            "fields": ["t", "responses_per_s", "errors_per_s", "failed_tries_per_s", "p50_ms", "p99_ms", "active"],
            "listeners": {},
            "pools": {},
        }
        for (kind, name), ring in self.rings.items():
            out[kind + "s"][name] = [s for s in ring if s[0] > since]
        return out


def overview(rt: Any, started: float) -> dict[str, Any]:
    """Listeners and pools as the dashboard's cards show them (no per-server rows)."""
    routed = listener_pools(rt)
    opened = {name: n for name, (_, n) in frontend_rows(rt).items()}
    listeners = [
        {
            "name": name,
            "mode": lst.mode,
            "address": f"{lst.host}:{lst.port}",
            "pools": routed.get(name, []),
            "open": opened.get(name, 0),
        }
        for name, lst in rt.listeners.items()
    ]
    pools = []
    for name, keeper in rt.health.items():
        by_status: dict[str, int] = {}
        for st in keeper.health.states:
            by_status[st.status] = by_status.get(st.status, 0) + 1
        pools.append(
            {
                "name": name,
                "algorithm": keeper.algorithm_name,
                "servers": len(keeper.health.states),
                "usable": len(keeper.pool.snapshot.servers),
                "by_status": by_status,
                "queued": rt.queue_depth(name),
                "panic": keeper.health.panic,
            }
        )
    ok, at = rt.last_reload or (None, None)
    return {
        "version": __version__,
        "uptime_s": round(time.time() - started, 3),
        "config": str(rt.config.source),
        "workers": rt.hub.count if rt.hub is not None else 1,
        "reloads": {**rt.reloads, "last_ok": ok, "last_at": at},
        "listeners": listeners,
        "pools": pools,
    }


def server_page(keeper: Any, offset: int, limit: int, q: str = "", status: str = "") -> dict[str, Any]:
    """One page of a pool's servers (as ``PoolHealthKeeper.status`` rows), filtered by a
    substring of the name or address (``q``) and by status; ``total`` counts the matches."""
    states = keeper.health.states
    if q or status:
        q = q.lower()
        states = [
            st
            for st in states
            if (not q or q in st.server.name.lower() or q in st.server.address) and (not status or st.status == status)
        ]
    now = keeper.loop.time()
    return {
        "pool": keeper.pool.name,
        "total": len(states),
        "offset": offset,
        "limit": limit,
        "servers": [keeper.row(st, now) for st in states[offset : offset + limit]],
    }


def events(journal: Any, limit: int) -> list[dict[str, Any]]:
    """The most recent events first: {t (Unix seconds), pool (or null), text}."""
    out = []
    for t, pool, text in reversed(journal):
        out.append({"t": round(t, 3), "pool": pool, "text": text})
        if len(out) >= limit:
            break
    return out
