"""The control process and a worker talk over a Unix socket pair, one JSON object per line.

Control process → worker: ``hello`` (the configuration text, the inherited descriptors, the
pools' current views), ``pools`` (new views: ``views``), ``stats`` (a request for counters,
answered with the same ``id``), ``stop`` (finish in-flight work, then exit).
Worker → control process: ``ready`` (listeners serving), ``failing`` (passive health: a server
failed too often in a row), ``stats`` (the answer), ``bye`` (final counters, just before exit);
both carry ``stats`` (pools) and ``listeners`` (name -> counters) and ``open`` (name -> open
connections now).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from typing import Any

from ..core.model import LATENCY_BOUNDS

LIMIT = 64 * 1024 * 1024  # one message at most (a stats answer of thousands of servers)


# -- a server's counters in a ``stats`` answer: one row ------------------------------------
# [requests, failures, latency_sum, resp_bytes, req_bytes, by_class (6), latency (buckets)]


def counter_row(load: Any) -> list:
    return [
        load.requests,
        load.failures,
        load.latency_sum,
        load.resp_bytes,
        load.req_bytes,
        load.by_class,
        load.latency,
    ]


def empty_row() -> list:
    return [0, 0, 0.0, 0, 0, [0] * 6, [0] * (len(LATENCY_BOUNDS) + 1)]


def add_rows(a: list, b: list) -> list:
    return [
        *(x + y for x, y in zip(a[:5], b[:5])),
        [x + y for x, y in zip(a[5], b[5])],
        [x + y for x, y in zip(a[6], b[6])],
    ]


def set_counters(load: Any, row: list) -> None:
    """The load record takes the counters of ``row`` (the control process's totals)."""
    load.requests, load.failures, load.latency_sum, load.resp_bytes, load.req_bytes = row[:5]
    load.by_class, load.latency = list(row[5]), list(row[6])


# -- a listener's counters: [accepted, requests, bytes_in, bytes_out, codes (10)] ----------------


def listener_row(listener: Any) -> list:
    """The frontend counters of a listener (``proxy.listening.StreamListener``); UDP has none."""
    codes = getattr(listener, "codes", None)
    if codes is None:
        return [0, 0, 0, 0, *([0] * 10)]
    return [listener.accepted, listener.requests, listener.bytes_in, listener.bytes_out, *codes]


def add_listener_rows(rows: list[dict[str, list]]) -> dict[str, list]:
    """Listener name -> its counters, summed over ``rows``."""
    out: dict[str, list] = {}
    for report in rows:
        for name, row in report.items():
            have = out.get(name)
            out[name] = list(row) if have is None else [x + y for x, y in zip(have, row)]
    return out


def sum_pool_reports(reports: list[dict]) -> dict:
    """Pool -> {"servers": name -> counters, "retried", "answered"}, summed over ``reports``."""
    out: dict[str, dict] = {}
    for report in reports:
        for pool, data in report.items():
            into = out.setdefault(pool, {"servers": {}, "retried": 0, "answered": {}})
            into["retried"] += data.get("retried", 0)
            for code, n in data.get("answered", {}).items():
                into["answered"][code] = into["answered"].get(code, 0) + n
            for name, row in data.get("servers", {}).items():
                into["servers"][name] = add_rows(into["servers"].get(name) or empty_row(), row)
    return out


def apply_pool_totals(health: dict[str, Any], reports: list[dict]) -> None:
    """Write the pools' totals over ``reports`` (the retired workers' first, then each serving
    worker's) into the control process's load records, pool by pool (``health``: the keepers)."""
    totals = sum_pool_reports(reports)
    for name, keeper in health.items():
        pool = totals.get(name, {})
        servers = pool.get("servers", {})
        for st in keeper.health.states:
            row = servers.get(st.server.name)
            if row is not None:
                set_counters(st.server.load, row)
        measured = [r[name]["ewma"] for r in reports[1:] if name in r and "ewma" in r[name]]
        for st in keeper.health.states:  # ([cluster] publishes it: the mean over workers that measured)
            seen = [m[st.server.name] for m in measured if st.server.name in m]
            st.server.load.ewma = sum(seen) / len(seen) if seen else 0.0
        keeper.pool.retried_total = pool.get("retried", 0)
        keeper.pool.answered = Counter({int(k): v for k, v in pool.get("answered", {}).items()})


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LIMIT)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the other side is gone."""
        try:
            line = await self.reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            return None
        if not line.endswith(b"\n"):
            return None
        return json.loads(line)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except ConnectionError:
            pass

    def close(self) -> None:
        self.writer.close()
