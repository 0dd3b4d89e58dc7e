"""The control process's stand-in for a listener when workers serve (``workers = N``).

A stream listener's socket is bound and listening here once; every worker inherits it, so the
kernel hands each new connection to whichever worker accepts first and a worker that dies
leaves the queue to the others. For a UDP listener only the port is chosen here (when the
configuration says port 0): each worker binds its own socket with ``SO_REUSEPORT``, and the
kernel keeps a flow on one worker by hashing its addresses.

It answers the graceful-stop steps a listener has (reload retires it like one): stopping
closes this process's copy; the workers keep theirs until they exit. A reload also uses it,
with one process or several, to bind every new listener before anything else changes.
"""

from __future__ import annotations

import socket
from typing import Any


class SocketHolder:
    """The control process's stand-in for a listener: it holds the bound socket the workers
    inherit (a stream listener) or the port they bind (a UDP listener)."""

    holder = True

    def __init__(self, lc: Any, backlog: int = 1024, keep_udp: bool = False) -> None:
        self.name, self.mode, self.host, self.port = lc.name, lc.mode, lc.host, lc.port
        self.keep_udp = keep_udp  # (a reload binding ahead for one process: it keeps the UDP socket too)
        self.requested_port = lc.port
        self.tls = getattr(lc, "tls", None)
        self.backlog = backlog
        self.sock: socket.socket | None = None
        self.connections: tuple = ()

    async def start(self) -> None:
        kind = socket.SOCK_DGRAM if self.mode == "udp" else socket.SOCK_STREAM
        family, _, _, _, addr = socket.getaddrinfo(self.host, self.port, type=kind, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind)
        try:
            if self.mode == "udp":  # each worker binds its own (SO_REUSEPORT): only the port is chosen here
                sock.bind(addr)
                self.port = sock.getsockname()[1]
                if self.keep_udp:
                    self.sock = sock
                else:
                    sock.close()
                return
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(self.backlog)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.sock = sock

    def stop_accepting(self) -> None:
        if self.sock is not None:  # (workers keep their own copies until they exit)
            self.sock.close()
            self.sock = None

    def shutdown_connections(self) -> None:
        pass

    async def wait_idle(self, grace: float) -> bool:
        return True

    def abort_connections(self) -> None:
        pass

    async def close(self) -> None:
        self.stop_accepting()
