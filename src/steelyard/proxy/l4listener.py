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

from .listening import StreamListener
from .splice import AVAILABLE as SPLICE_AVAILABLE
from .tcp import TcpRelay

if TYPE_CHECKING:
    from .pool import PoolRuntime

log = logging.getLogger("steelyard.proxy")


class TcpListener(StreamListener):
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
        super().__init__(name, host, port, loop=loop, backlog=backlog)
        self.pool = pool
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.send_proxy = send_proxy
        self.splice = splice and SPLICE_AVAILABLE
        self._refused = 0  # clients refused (no server reachable) since the last log line
        self._refused_logged = -1e9
        self.sni_routes: list[tuple[str, PoolRuntime]] = []  # (name or "*.suffix", pool): route by SNI

    def protocol(self) -> TcpRelay:
        return TcpRelay(self)

    @property
    def sweep_interval(self) -> float:
        return max(0.01, min(1.0, self.idle_timeout / 4))

    def sweep(self, now: float) -> None:
        limit = now - self.idle_timeout
        for relay in list(self.connections):
            if relay.busy:
                relay.busy = False
                relay.last = now
            elif relay.last < limit:
                relay.abort()

    def abort(self, relay: TcpRelay) -> None:
        relay.abort()

    def shutdown_connections(self) -> None:
        """Relayed connections carry no requests to wait for: they get the grace as they are."""

    def unreachable(self, client: object, why: str, tried: int) -> None:
        """A client is turned away because no server could be reached (rate-limited log)."""
        self._refused += 1
        now = self.loop.time()
        if now - self._refused_logged >= 1.0:
            log.warning(
                "listener %s: no server of pool %s reachable (%d tried; last: %s); closing client %s"
                " (%d client(s) turned away since the last such line)",
                self.name,
                self.pool.name,
                tried,
                why,
                client,
                self._refused,
            )
            self._refused, self._refused_logged = 0, now
