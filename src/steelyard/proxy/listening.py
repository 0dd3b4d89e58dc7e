"""What the HTTP and TCP listeners share: a bound stream server, the set of its connections,
one periodic sweep (timeouts are stamps checked there, never a timer per connection), and
the steps of a graceful stop (stop accepting, wait for the connections to leave within a
grace period, abort the rest, close).

A subclass sets ``protocol`` (called with the listener for each accepted connection) and
implements ``sweep(now)``, ``sweep_interval`` and ``abort(conn)``.

Connection limits (``harden``): a connection is counted by ``admit`` (called from its
``connection_made``) and uncounted by ``forget`` (from its ``connection_lost``). One over
``max_connections`` (open on this listener) or ``max_connections_per_client`` (open from one
client address) is closed at once, before a byte is read: the cheapest answer under a flood,
and the one HAProxy's and nginx's connection limits give at the TCP level as well.
"""

from __future__ import annotations

import asyncio
from typing import Any


class StreamListener:
    mode = "?"
    max_connections: int | None = None
    max_per_client: int | None = None
    ssl: Any = None  # an ssl.SSLContext when the listener terminates TLS
    handshake_timeout = 10.0  # a TLS handshake not done by then is dropped
    sock: Any = None  # a listening socket bound elsewhere (a worker process inherits it); None: bind here

    def __init__(self, name: str, host: str, port: int, *, loop: asyncio.AbstractEventLoop, backlog: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.loop = loop
        self.backlog = backlog
        self.connections: set[Any] = set()
        self.now = loop.time()  # the sweep's clock reading: connections stamp their activity with it
        self.clock = loop.time  # bound once, shared by every connection (64 bytes each otherwise)
        self.server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._all_gone: asyncio.Event | None = None
        self.per_client: dict[Any, int] = {}  # open connections per client address (with a per-client limit)
        self.client_of: dict[Any, Any] = {}
        self.turned_away = 0  # connections closed by the limits, since the start
        # counters for /metrics (frontend), since the start, carried across a reload
        self.accepted = 0  # connections accepted (those the limits turn away included)
        self.requests = 0  # HTTP requests begun
        self.codes = [0] * 10  # HTTP responses by status class (index status // 100; 0: none came)
        self.bytes_in = 0  # bytes received from clients (HTTP)
        self.bytes_out = 0  # bytes of responses sent to clients (HTTP: as the servers sent them)

    def harden(self, lc: Any) -> StreamListener:
        """Take the connection limits of listener config ``lc``; returns self."""
        self.max_connections = lc.max_connections
        self.max_per_client = lc.max_connections_per_client
        return self

    def admit(self, conn: Any, client: Any) -> bool:
        """Count ``conn`` in (True), or refuse it (False: the caller closes it) over a limit."""
        self.accepted += 1
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            self.turned_away += 1
            return False
        if self.max_per_client is not None:
            n = self.per_client.get(client, 0)
            if n >= self.max_per_client:
                self.turned_away += 1
                return False
            self.per_client[client] = n + 1
            self.client_of[conn] = client
        self.connections.add(conn)
        return True

    def protocol(self) -> asyncio.Protocol:
        raise NotImplementedError

    @property
    def sweep_interval(self) -> float:
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        raise NotImplementedError

    def abort(self, conn: Any) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        tls = {"ssl": self.ssl, "ssl_handshake_timeout": self.handshake_timeout} if self.ssl is not None else {}
        if self.sock is not None:
            self.server = await self.loop.create_server(self.protocol, sock=self.sock, backlog=self.backlog, **tls)
        else:
            self.server = await self.loop.create_server(
                self.protocol, self.host, self.port, backlog=self.backlog, reuse_address=True, **tls
            )
        self.port = self.server.sockets[0].getsockname()[1]
        self._sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = self.sweep_interval
        while True:
            await asyncio.sleep(interval)
            self.now = now = self.loop.time()
            self.sweep(now)

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def forget(self, conn: Any) -> None:
        self.connections.discard(conn)
        if self.client_of:
            client = self.client_of.pop(conn, None)
            if client is not None:
                n = self.per_client[client] - 1
                if n:
                    self.per_client[client] = n
                else:
                    del self.per_client[client]
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def wait_idle(self, grace: float) -> bool:
        """Wait until every connection is gone or ``grace`` passes; True when all left."""
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
            self.abort(conn)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
