"""Zero-copy relaying with ``os.splice`` (Linux): socket -> pipe -> socket, bytes never enter Python.

Used by a ``TcpRelay`` once both connections exist and neither transport holds unsent bytes.
The relay's transports stay the owners of the sockets (they close them); this module reads and
writes through duplicates of their descriptors (``Spliced``), registered with the loop's
``add_reader`` / ``add_writer`` while both transports are paused.

Per direction (a ``Pump``): readable source -> splice into its pipe -> splice out to the sink.
When the sink is full the bytes wait in the pipe, the source is no longer watched, and the
sink is watched for writability instead (backpressure, as the copy path's pause_reading).
EOF from a source, once its pipe is drained, shuts down the sink's sending side; when both
pumps are done, or on any error, the relay closes (``TcpRelay.close`` / ``abort``).
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from .tcp import TcpRelay

FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
CHUNK = 1 << 18
PIPE_SIZE = 1 << 18
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
AVAILABLE = hasattr(os, "splice") and hasattr(os, "pipe2")


class Pump:
    __slots__ = ("owner", "loop", "src", "dst", "dst_sock", "rd", "wr", "queued", "eof", "waiting")

    def __init__(self, owner: "Spliced", src: socket.socket, dst: socket.socket) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.src, self.dst, self.dst_sock = src.fileno(), dst.fileno(), dst
        self.rd, self.wr = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:  # a pipe holds 64 KiB by default: a larger one takes fewer trips through Python
            fcntl.fcntl(self.wr, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self.queued = 0  # bytes waiting in the pipe
        self.eof = False
        self.waiting = False  # the sink is full: watched for writability, the source not read
        self.loop.add_reader(self.src, self.readable)

    def readable(self) -> None:
        try:
            n = os.splice(self.src, self.wr, CHUNK, flags=FLAGS)
        except BlockingIOError:
            return
        except OSError:
            self.owner.failed()
            return
        self.owner.relay.busy = True
        if n == 0:
            self.eof = True
            self.loop.remove_reader(self.src)
        else:
            self.queued += n
        self.writable()

    def writable(self) -> None:
        try:
            while self.queued:
                self.queued -= os.splice(self.rd, self.dst, self.queued, flags=FLAGS)
        except BlockingIOError:  # the sink is full: stop reading, wait until it drains
            if not self.waiting:
                self.waiting = True
                self.loop.remove_reader(self.src)
                self.loop.add_writer(self.dst, self.writable)
            return
        except OSError:
            self.owner.failed()
            return
        if self.waiting:  # (uvloop's remove_* return None, not whether something was removed)
            self.waiting = False
            self.loop.remove_writer(self.dst)
            if not self.eof:
                self.loop.add_reader(self.src, self.readable)
        if self.eof:
            try:
                self.dst_sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.owner.half_closed()

    def close(self) -> None:
        self.loop.remove_reader(self.src)
        self.loop.remove_writer(self.dst)
        os.close(self.rd)
        os.close(self.wr)


class Spliced:
    """Both directions of one relay, over duplicates of its two sockets."""

    __slots__ = ("relay", "loop", "client", "server", "pumps", "halves", "closed")

    def __init__(self, relay: "TcpRelay", client: "asyncio.Transport", server: "asyncio.Transport") -> None:
        self.relay = relay
        self.loop = relay.L.loop
        self.client = socket.socket(fileno=os.dup(client.get_extra_info("socket").fileno()))
        self.server = socket.socket(fileno=os.dup(server.get_extra_info("socket").fileno()))
        self.halves = 0
        self.closed = False
        self.pumps = (Pump(self, self.client, self.server), Pump(self, self.server, self.client))

    def half_closed(self) -> None:
        self.halves += 1
        if self.halves >= 2:
            self.close()
            self.relay.close()

    def failed(self) -> None:
        self.close()
        self.relay.abort()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pump in self.pumps:
            pump.close()
        self.client.close()
        self.server.close()
