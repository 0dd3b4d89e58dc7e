"""The access log: one JSON line per answered request, off unless a listener sets
``access_log``. The request path only appends a tuple to a list; a task formats the lines and
writes them from a worker thread every ``FLUSH`` seconds (or sooner once ``BATCH`` wait), so
neither formatting nor disk waits happen per request on the event loop's critical path.

Memory is bounded when the disk falls behind (or fails): past ``MAX_PENDING`` lines waiting for
a writer that is still busy, new lines are dropped and counted, and a line on stderr (at most
one a second) says how many; a failed write (a full disk) drops its batch the same way. The
balancer never blocks on its log, as HAProxy's syslog logging never does.

Fields: ``time`` (Unix seconds), ``client``, ``method``, ``path``, ``status``, ``bytes`` (of the
response as the server sent it; 0 when steelyard answered itself), ``duration_ms``
(from the request head to the end of the answer), ``pool``, ``server`` (none when steelyard
answered itself), ``retries``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from typing import Any

FLUSH = 0.5
BATCH = 4096
MAX_PENDING = 64 * 1024  # lines waiting while a write is still in progress (then dropped, counted)
log = logging.getLogger("steelyard.access")


class AccessLog:
    def __init__(self, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path, self.loop = path, loop
        self.pending: list[tuple[Any, ...]] = []
        self.offset = time.time() - loop.time()  # loop clock -> Unix time
        # (unbuffered, O_APPEND: each batch is one write, so worker processes sharing the file
        # never interleave inside a line)
        self.file: Any = sys.stdout if path == "-" else open(path, "ab", buffering=0)  # noqa: SIM115
        self.task = loop.create_task(self._run())
        self.writing: asyncio.Future[None] | None = None
        self.dropped = 0  # lines lost to a writer that fell behind or failed (since the last warning)
        self.warned = 0.0

    def record(self, down: Any, ex: Any, status: int, server: Any) -> None:
        pending = self.pending
        if len(pending) >= BATCH:
            if self.writing is None:
                self._flush()
                pending = self.pending
            elif len(pending) >= MAX_PENDING:
                self.dropped += 1  # the disk does not keep up: the line is lost, memory is not
                return
        pending.append(
            (ex.t_begin, self.loop.time(), down.ip, ex.method, ex.url, status, ex.resp_bytes, ex.pool, server, ex.tries)
        )

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self.writing = self.loop.run_in_executor(None, self._write, batch)
            self.writing.add_done_callback(functools.partial(self._written, len(batch)))

    def _written(self, lines: int, done: asyncio.Future[None]) -> None:
        self.writing = None
        exc = done.exception()
        if exc is not None:  # (a full disk, a removed file system)
            self.dropped += lines
        if self.dropped and self.loop.time() - self.warned >= 1.0:
            why = f" ({exc})" if exc is not None else " (the disk did not keep up)"
            log.error("access log %s: %d lines dropped%s", self.path, self.dropped, why)
            self.dropped, self.warned = 0, self.loop.time()

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        off, lines = self.offset, []
        for t, end, ip, method, url, status, size, pool, server, tries in batch:
            lines.append(
                json.dumps(
                    {
                        "time": round(t + off, 6),
                        "client": ip.decode("latin-1"),
                        "method": method.decode("latin-1"),
                        "path": url.decode("latin-1"),
                        "status": status,
                        "bytes": size,
                        "duration_ms": round((end - t) * 1000, 3),
                        "pool": pool.name if pool is not None else None,
                        "server": server.name if server is not None else None,
                        "retries": tries,
                    },
                    separators=(",", ":"),
                )
            )
        text = "\n".join(lines) + "\n"
        if self.file is sys.stdout:
            self.file.write(text)
            self.file.flush()
            return
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[self.file.write(data) :]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            if self.writing is None:
                self._flush()

    async def close(self) -> None:
        self.task.cancel()
        if self.writing is not None:
            await self.writing
        batch, self.pending = self.pending, []
        if batch:
            await self.loop.run_in_executor(None, self._write, batch)
        if self.file is not sys.stdout:
            self.file.close()
