"""What the HTTP and TCP listeners share: a bound stream server, the set of its connections,
one periodic sweep (timeouts are stamps checked there, never a timer per connection), and
the steps of a graceful stop (stop accepting, wait for the connections to leave within a
grace period, abort the rest, close).

A subclass sets ``protocol`` (called with the listener for each accepted connection) and
implements ``sweep(now)``, ``sweep_interval`` and ``abort(conn)``.
"""

from __future__ import annotations

import asyncio
from typing import Any


class StreamListener:
    mode = "?"

    def __init__(self, name: str, host: str, port: int, *, loop: asyncio.AbstractEventLoop, backlog: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.loop = loop
        self.backlog = backlog
        self.connections: set[Any] = set()
        self.now = loop.time()  # the sweep's clock reading: connections stamp their activity with it
        self.server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self._all_gone: asyncio.Event | None = None

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
        self.server = await self.loop.create_server(
            self.protocol, self.host, self.port, backlog=self.backlog, reuse_address=True
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
