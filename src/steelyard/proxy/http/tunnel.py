"""A tunnel after a 101 (WebSocket and other upgrades): raw bytes both ways, nothing parsed.

Rules: a half-close (EOF) from one side is passed on as a half-close to the other,
and the other direction keeps flowing; when both sides have half-closed, or either
connection is lost, both transports are closed, so no connection outlives its tunnel.
A connection lost to a reset (or any error) is passed on as a reset: a FIN would tell the
other side that the stream ended cleanly (as the TCP relay does).
Flow control stays with the two protocols (each pauses reading from the other side
while its own transport is full).
"""

from __future__ import annotations

import asyncio

from ..reset import reset


class Tunnel:
    __slots__ = ("client", "server", "eofs")

    def __init__(self, client: asyncio.Transport, server: asyncio.Transport) -> None:
        self.client = client
        self.server = server
        self.eofs = 0

    def eof(self, towards: asyncio.Transport) -> bool:
        """One side half-closed: pass it on ``towards`` the other; True keeps the side open."""
        self.eofs += 1
        if self.eofs >= 2 or not towards.can_write_eof():
            self.close()
            return False
        towards.write_eof()
        return True

    def close(self, exc: Exception | None = None) -> None:
        """Both sides go: closed once their buffers drained, or reset when ``exc`` (the reason
        one side was lost) says that side did not end cleanly."""
        if exc is None:
            self.client.close()
            self.server.close()
        else:
            for transport in (self.client, self.server):
                if not transport.is_closing():
                    reset(transport)
