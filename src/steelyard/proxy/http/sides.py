"""What a server connection needs of the client side of its exchange.

An ``UpstreamConnection`` reads a server's response and hands it to a ``ClientSide``: bytes
framed for that client on its ``transport``, then ``exchange_done`` or ``exchange_failed``;
flow control both ways. ``DownstreamProtocol`` (an HTTP/1 client connection) is one;
``holding.Held`` is one while a response filter is awaited (it keeps what the server sends).
A second client codec (HTTP/2 streams) would be another: the server side does not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from .exchange import Exchange
    from .listener import HttpListener
    from .upstream import UpstreamConnection


class ClientSide(Protocol):
    @property
    def L(self) -> HttpListener:
        """Its listener (its TLS: a sticky cookie over https gets Secure)."""

    @property
    def transport(self) -> asyncio.WriteTransport:
        """Where the response goes, framed for this client."""

    @property
    def write_paused(self) -> float:
        """Since when the client reads nothing (0: it reads); meanwhile the server is not read."""

    def pause_for_upstream(self) -> None:
        """The server's connection is full: stop reading the client (its request body)."""

    def resume_for_upstream(self) -> None:
        """The server's connection drained: read the client again."""

    def exchange_done(self, ex: Exchange, now: float) -> None:
        """``ex``'s response went to the client in full (``now``: the clock, just read)."""

    def exchange_failed(self, ex: Exchange, status: int, responded: bool, retry: int = 0) -> None:
        """``ex`` failed: answer ``status`` (or cut the client off when ``responded``), or retry."""

    def start_tunnel(self, ex: Exchange, conn: UpstreamConnection) -> None:
        """The server accepted ``ex``'s upgrade: raw bytes both ways from now on."""
