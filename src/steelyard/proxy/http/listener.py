"""An HTTP listener: the bound socket, its router, its client connections and their timers.

Timeouts (client keep-alive idle, request head, upstream response) are enforced by
one sweep per listener a few times a second instead of a timer per request: the
per-request path only stores timestamps, it never creates or cancels a timer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ...core.balancing import PickContext
from ..listening import StreamListener
from ..tls import SniContexts
from . import request
from .access import AccessLog
from .chains import ListenerFilters, Recorder
from .downstream import DownstreamProtocol
from .router import Router
from .timeouts import check_timeouts

if TYPE_CHECKING:
    from ..pool import PoolRuntime

IDLE_GRACE = 3.0  # seconds a stopping listener keeps idle connections open for a request on its way
# (long enough for a client starved of CPU by the reload itself: closing under its request is a failure)
CLIENTS_MAX = 4096  # client addresses whose shared per-connection values are kept (then all are dropped)


class HttpListener(StreamListener):
    mode = "http"
    # limits (``harden`` takes them from the config; these are the defaults, docs/security.md)
    max_uri_length = 8192  # 414 past it
    max_parts = 4 * 100  # max_header_count, as entries of ``Exchange.parts`` (4 per field): 431 past it
    max_body_size: int | None = None  # 413 past it
    max_body = 1 << 62  # max_body_size or "no limit", compared per body chunk
    min_body_rate: int | None = None  # bytes/s, else 408
    body_grace = 1.0  # seconds after the head in which a body may be slower than min_body_rate
    stopping = False  # shutdown_connections ran: connections made from now on are closing too
    idle_grace_over = False  # a stop's moment of grace for idle connections has passed
    tls: SniContexts | None = None

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
        self.access_log: AccessLog | None = AccessLog(access_log, loop) if access_log else None
        # what every ending records to: the access log, or a ``chains.Recorder`` that also runs
        # the filters' logging phase (and then the access log, if any)
        self.access: AccessLog | Recorder | None = self.access_log
        # the listener's filters (redirect_https and rate_limit among them), or None: no phases
        self.filters: ListenerFilters | None = None
        self.router = router
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.scheme = scheme
        # per client address, shared by its connections: (address as bytes, the X-Forwarded-For/-Proto
        # block for requests that bring none, the balancer's PickContext); bounded like a cache
        self.clients: dict[str, tuple[bytes, bytes, PickContext]] = {}
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
        # (instance attributes: read per request, found at the first lookup; the values ``harden``
        # set, which a reload's refresh must keep, else the class defaults)
        self.max_uri_length, self.max_parts, self.max_body = self.max_uri_length, self.max_parts, self.max_body
        # a timeout may fire up to one sweep late, and stamps are up to one sweep old
        self.slack = self.sweep_interval

    def client(self, ip: str) -> tuple[bytes, bytes, PickContext]:
        """What the connections from ``ip`` share (built once; the picker sets ``key`` per pick)."""
        if len(self.clients) >= CLIENTS_MAX:
            self.clients.clear()
        bip = ip.encode()
        client = self.clients[ip] = (
            bip,
            b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\n" % (bip, self.scheme),
            PickContext(ip),
        )
        return client

    @property
    def sweep_interval(self) -> float:
        """A quarter of the shortest timeout the sweep enforces, within [10 ms, 1 s]."""
        pools = {self.router.default, *(r.target for r in self.router.routes)}
        shortest = min(self.keepalive_timeout, self.request_timeout, *(p.timeout for p in pools))
        return max(0.01, min(1.0, shortest / 4))

    def harden(self, lc: Any) -> HttpListener:
        """Take the limits and TLS of listener config ``lc``; returns self (its filters, the rate
        limit and the redirect among them, come with ``use_filters``)."""
        super().harden(lc)
        self.max_uri_length = lc.max_uri_length
        self.max_parts = 4 * lc.max_header_count
        self.max_body_size = lc.max_body_size
        self.max_body = lc.max_body_size if lc.max_body_size is not None else 1 << 62
        self.min_body_rate = lc.min_body_rate
        if lc.tls is not None:
            self.tls = SniContexts(lc.tls)
            self.ssl = self.tls.default
            self.scheme = b"https"
            self.clients.clear()  # (their forwarded blocks name the scheme)
            self.handshake_timeout = self.request_timeout
        return self

    def use_filters(self, filters: ListenerFilters | None) -> None:
        """Serve with ``filters`` (``chains.from_config``; None: none) from the next request on
        (after ``refresh`` and the access log: it reads both)."""
        self.filters = filters
        self.access = Recorder(self.access_log) if filters is not None and filters.logs else self.access_log
        if filters is not None and any(p.key_kind in ("header", "cookie") for p in filters.pools.values()):
            self.keep_headers = True  # (a filter may send a request to any pool: one may hash on a header)

    def protocol(self) -> DownstreamProtocol:
        return DownstreamProtocol(self)

    def sweep(self, now: float) -> None:
        for conn in list(self.connections):
            check_timeouts(conn, now)
        request.trim()

    def abort(self, conn: DownstreamProtocol) -> None:
        conn.transport.abort()

    async def close(self) -> None:
        await super().close()
        if self.access_log is not None:
            await self.access_log.close()

    def shutdown_connections(self) -> None:
        self.stopping = True  # (a connection accepted just before the listening socket closed is
        # made after this: it starts closing, else it would keep alive and be closed at the grace's end)
        for conn in list(self.connections):
            conn.shutdown()
        # connections with no request in progress stay for a moment, for a request already on
        # its way (answered with Connection: close); idle past it, they hold no stop
        self.loop.call_later(IDLE_GRACE, self._close_idle)

    def _close_idle(self) -> None:
        self.idle_grace_over = True  # (from now on a stopping connection closes as soon as it is idle)
        for conn in list(self.connections):
            conn.close_if_idle()
