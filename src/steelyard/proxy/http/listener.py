"""An HTTP listener: the bound socket, its router, its client connections and their timers.

Timeouts (client keep-alive idle, request head, upstream response) are enforced by
one sweep per listener a few times a second instead of a timer per request: the
per-request path only stores timestamps, it never creates or cancels a timer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..listening import StreamListener
from .access import AccessLog
from .downstream import DownstreamProtocol
from .router import Router
from .timeouts import check_timeouts

if TYPE_CHECKING:
    from ..pool import PoolRuntime


class HttpListener(StreamListener):
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
        access_log: str | None = None,
    ) -> None:
        super().__init__(name, host, port, loop=loop, backlog=backlog)
        self.access: AccessLog | None = AccessLog(access_log, loop) if access_log else None
        self.router = router
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.scheme = scheme
        self.refresh()

    def refresh(self) -> None:
        """Derive what depends on the router and timeouts (again, after a reload changed them)."""
        router = self.router
        # Requests keep a list of their headers only when something reads it: a route
        # matching on a header, or a pool hashing on a header or a cookie.
        pools = {router.default, *(r.target for r in router.routes)}
        self.keep_headers = any(r.header_name is not None for r in router.routes) or any(
            p.key_kind in ("header", "cookie") for p in pools
        )
        # a timeout may fire up to one sweep late, and stamps are up to one sweep old
        self.slack = self.sweep_interval

    @property
    def sweep_interval(self) -> float:
        """A quarter of the shortest timeout the sweep enforces, within [10 ms, 1 s]."""
        pools = {self.router.default, *(r.target for r in self.router.routes)}
        shortest = min(self.keepalive_timeout, self.request_timeout, *(p.timeout for p in pools))
        return max(0.01, min(1.0, shortest / 4))

    def protocol(self) -> DownstreamProtocol:
        return DownstreamProtocol(self)

    def sweep(self, now: float) -> None:
        for conn in list(self.connections):
            check_timeouts(conn, now)

    def abort(self, conn: DownstreamProtocol) -> None:
        conn.transport.abort()

    async def close(self) -> None:
        await super().close()
        if self.access is not None:
            await self.access.close()

    def shutdown_connections(self) -> None:
        for conn in list(self.connections):
            conn.shutdown()
