"""An HTTP listener: the bound socket, its router, its client connections and their timers.

Timeouts (client keep-alive idle, request head, upstream response) are enforced by
one sweep per listener a few times a second instead of a timer per request: the
per-request path only stores timestamps, it never creates or cancels a timer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .downstream import DownstreamProtocol
from .router import Router
from .timeouts import check_timeouts

if TYPE_CHECKING:
    from ..pool import PoolRuntime


class HttpListener:
    mode = "http"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        router: "Router[PoolRuntime]",
        *,
        loop: asyncio.AbstractEventLoop,
        keepalive_timeout: float,
        request_timeout: float,
        scheme: bytes = b"http",
        backlog: int = 1024,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.router = router
        self.loop = loop
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.scheme = scheme
        self.backlog = backlog
        self.connections: set[DownstreamProtocol] = set()
        # Requests keep a list of their headers only when something reads it: a route
        # matching on a header, or a pool hashing on a header or a cookie.
        pools = {router.default, *(r.target for r in router.routes)}
        self.keep_headers = any(r.header_name is not None for r in router.routes) or any(
            p.key_kind in ("header", "cookie") for p in pools
        )
        self.now = loop.time()
        self.server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self._all_gone: asyncio.Event | None = None
        # a timeout may fire up to one sweep late, and stamps are up to one sweep old
        self.slack = self.sweep_interval

    @property
    def sweep_interval(self) -> float:
        """A quarter of the shortest timeout the sweep enforces, within [10 ms, 1 s]."""
        pools = {self.router.default, *(r.target for r in self.router.routes)}
        shortest = min(self.keepalive_timeout, self.request_timeout, *(p.timeout for p in pools))
        return max(0.01, min(1.0, shortest / 4))

    async def start(self) -> None:
        self.server = await self.loop.create_server(
            lambda: DownstreamProtocol(self),
            self.host,
            self.port,
            backlog=self.backlog,
            reuse_address=True,
        )
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]
        self._sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = self.slack
        while True:
            await asyncio.sleep(interval)
            self.now = now = self.loop.time()
            for conn in list(self.connections):
                check_timeouts(conn, now)

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def shutdown_connections(self) -> None:
        for conn in list(self.connections):
            conn.shutdown()

    def forget(self, conn: DownstreamProtocol) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def wait_idle(self, grace: float) -> bool:
        """Wait until every client connection is gone or ``grace`` passes; True when all left."""
        if not self.connections:
            return True
        self._all_gone = asyncio.Event()
        try:
            await asyncio.wait_for(self._all_gone.wait(), grace)
        except TimeoutError:
            pass
        return not self.connections

    def abort_connections(self) -> None:
        for conn in list(self.connections):
            conn.transport.abort()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
