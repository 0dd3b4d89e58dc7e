"""Ending a connection with a TCP reset (RST) instead of a FIN.

``transport.abort()`` drops what is buffered but still closes with a FIN, which a peer reads as
a clean end. Where the end is an error the peer could not see otherwise (a response cut short
towards an HTTP/1.0 client, whose body is delimited by the close; a relayed connection whose
other side was reset), the close must be a reset: ``SO_LINGER`` with a zero timeout makes the
kernel send one when the socket closes.
"""

from __future__ import annotations

import asyncio
import socket
import struct

_LINGER_NOW = struct.pack("ii", 1, 0)


def reset(transport: asyncio.WriteTransport) -> None:
    """Close ``transport`` at once with a reset (dropping anything not yet sent)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NOW)
        except OSError:  # (already closed: abort alone is all that is left)
            pass
    transport.abort()
