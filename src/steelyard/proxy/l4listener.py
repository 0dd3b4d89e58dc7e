"""A TCP (L4) listener: the bound socket, its relays, the idle sweep, and graceful stop.

Invariants:
- Idle timeouts are enforced by one sweep per listener (every quarter of ``idle_timeout``,
  within [10 ms, 1 s]): a relay's per-chunk path only sets ``busy``; the sweep turns that
  into a timestamp and aborts relays idle for longer than ``idle_timeout`` (so a limit fires
  up to two sweep intervals late, never early).
- "No server reachable" is logged at most once per second per listener, with the count of
  clients refused since the previous line, so a dead pool under load does not flood the log.
- The stop sequence is the HTTP listener's: ``stop_accepting``, ``shutdown_connections``
  (nothing to do: relayed connections may finish on their own), ``wait_idle(grace)``,
  ``abort_connections``, ``close``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .splice import AVAILABLE as SPLICE_AVAILABLE
from .tcp import TcpRelay

if TYPE_CHECKING:
    from .pool import PoolRuntime

log = logging.getLogger("steelyard.proxy")


class TcpListener:
    mode = "tcp"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        pool: "PoolRuntime",
        *,
        loop: asyncio.AbstractEventLoop,
        connect_timeout: float,
        idle_timeout: float,
        send_proxy: str | None = None,
        splice: bool = False,
        backlog: int = 1024,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.pool = pool
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.send_proxy = send_proxy
        self.splice = splice and SPLICE_AVAILABLE
        self.backlog = backlog
        self.connections: set[TcpRelay] = set()
        self.now = loop.time()
        self.server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self._all_gone: asyncio.Event | None = None
        self._refused = 0  # clients refused (no server reachable) since the last log line
        self._refused_logged = -1e9

    async def start(self) -> None:
        self.server = await self.loop.create_server(
            lambda: TcpRelay(self), self.host, self.port, backlog=self.backlog, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self._sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = max(0.01, min(1.0, self.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.now = now = self.loop.time()
            limit = now - self.idle_timeout
            for relay in list(self.connections):
                if relay.busy:
                    relay.busy = False
                    relay.last = now
                elif relay.last < limit:
                    relay.abort()

    def unreachable(self, client: object, why: str, tried: int) -> None:
        """A client is turned away because no server could be reached (rate-limited log)."""
        self._refused += 1
        now = self.loop.time()
        if now - self._refused_logged >= 1.0:
            log.warning("listener %s: no server of pool %s reachable (%d tried; last: %s); closing client %s"
                        " (%d client(s) turned away since the last such line)",
                        self.name, self.pool.name, tried, why, client, self._refused)
            self._refused, self._refused_logged = 0, now

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def shutdown_connections(self) -> None:
        """Relayed connections carry no requests to wait for: they get the grace as they are."""

    def forget(self, relay: TcpRelay) -> None:
        self.connections.discard(relay)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def wait_idle(self, grace: float) -> bool:
        """Wait until every relay is gone or ``grace`` passes; True when all left."""
        if not self.connections:
            return True
        self._all_gone = asyncio.Event()
        try:
            await asyncio.wait_for(self._all_gone.wait(), grace)
        except TimeoutError:
            pass
        return not self.connections

    def abort_connections(self) -> None:
        for relay in list(self.connections):
            relay.abort()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
