"""Keep-alive connections to one server: idle ones kept LIFO (warmest first), capped by
``max_idle``, closed after ``idle_timeout`` by ``sweep``; new ones opened by ``connect_for``.

Once ``close`` ran (the server left its pool) nothing is kept any more: busy connections
close when their exchange ends instead of coming back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from ...core.model import Server
from ..resources import WARNER, is_local
from .dispatch import UNSENT
from .upstream import UpstreamConnection

if TYPE_CHECKING:
    from .downstream import DownstreamProtocol
    from .exchange import Exchange


class ConnPool:
    """Idle keep-alive connections to one server (LIFO, capped, expired by ``sweep``)."""

    __slots__ = (
        "server",
        "loop",
        "idle",
        "max_idle",
        "idle_timeout",
        "connect_timeout",
        "timeout",
        "try_timeout",
        "closed",
        "ssl",
        "server_name",
    )

    def __init__(
        self,
        server: Server,
        loop: asyncio.AbstractEventLoop,
        *,
        max_idle: int,
        idle_timeout: float,
        connect_timeout: float,
        timeout: float,
        try_timeout: float | None = None,
        ssl: Any = None,
        server_name: str | None = None,
    ) -> None:
        self.server = server
        self.loop = loop
        self.idle: deque[UpstreamConnection] = deque()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.timeout = timeout  # a response that stalls this long is cut (504)
        self.try_timeout = timeout if try_timeout is None else try_timeout  # wait for a response head
        self.closed = False  # the server left its pool: connections close when they finish
        self.ssl = ssl  # an ssl.SSLContext: TLS to the server (SNI and name check: server_name or its host)
        self.server_name = server_name

    def acquire(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        s = self.server
        _, conn = await asyncio.wait_for(
            self.loop.create_connection(
                lambda: UpstreamConnection(self),
                s.host,
                s.port,
                **({"ssl": self.ssl, "server_hostname": self.server_name or s.host} if self.ssl is not None else {}),
            ),
            self.connect_timeout,
        )
        return conn

    def connect_for(self, ex: "Exchange", down: "DownstreamProtocol") -> None:
        """Open a new connection and hand it to ``down`` for ``ex``; a refusal is a 502 and
        a connect timeout a 504, unless another server takes the request (it never reached
        this one, so any request may be retried); a local shortage (no descriptor left) is a
        503 that no server is blamed for. If ``ex`` was abandoned meanwhile the connection is
        kept idle."""

        def connected(fut: asyncio.Future[UpstreamConnection]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if down.current is not ex:  # the client went away (or the exchange ended) meanwhile
                if exc is None:
                    self.release(fut.result())  # nobody waits for it now: keep it warm
            elif exc is not None:
                if is_local(exc):  # out of descriptors (or ports, memory): not the server's failure
                    WARNER.warn(f"connect to {self.server.name} ({self.server.address})", exc)
                    down.local_failure(ex)
                else:
                    down.exchange_failed(ex, 504 if isinstance(exc, TimeoutError) else 502, False, UNSENT)
            else:
                conn = fut.result()
                if conn.closed or conn.transport is None or conn.transport.is_closing():
                    # connected, then closed before a byte was sent (a server dying as it accepts)
                    down.exchange_failed(ex, 502, False, UNSENT)
                else:
                    down.attach(conn, ex)

        asyncio.ensure_future(self.connect()).add_done_callback(connected)

    def release(self, conn: UpstreamConnection) -> None:
        if self.closed or len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def sweep(self, now: float) -> None:
        limit = now - self.idle_timeout
        while self.idle and self.idle[0].idle_since < limit:
            self.idle.popleft().close()

    def close(self) -> None:
        """Close the idle connections now; busy ones close when their exchange ends."""
        self.closed = True
        while self.idle:
            self.idle.popleft().close()
