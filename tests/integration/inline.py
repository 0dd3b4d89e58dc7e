"""Misbehaving servers written inline in tests: a threaded accept loop whose handler gets a
``Peer`` (a socket with request-reading helpers) and records what it saw."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

WAIT = 10.0  # generous upper bound for anything that should happen "soon"


# --- helpers: misbehaving servers ----------------------------------------------------------------


class Peer:
    """Buffered reads of HTTP/1.1 requests from one accepted socket (Content-Length bodies only)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self) -> tuple[bytes, bytes]:
        head = self.head()
        assert b"transfer-encoding" not in head.lower(), "inline servers only take Content-Length bodies"
        return head, self.exactly(content_length(head))

    def read_all_until_eof(self) -> bytes:
        try:
            while True:
                self._fill()
        except (EOFError, OSError):
            pass
        out, self.buf = self.buf, b""
        return out


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def request_line(head: bytes) -> tuple[str, str]:
    method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
    return method.decode(), target.decode()


class InlineServer:
    """``handler(peer, index, server)`` runs in its own thread for every accepted connection."""

    def __init__(self, handler: Callable[[Peer, int, InlineServer], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted_cond = threading.Condition(self.lock)  # notified on every accept
        self.accepted = 0
        self.seen: list[tuple[int, bytes, bytes]] = []  # (connection index, request head, body)
        self.conns: list[socket.socket] = []
        self.done: list[threading.Event] = []
        self.release = threading.Event()  # handlers that stall wait on this
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def record(self, index: int, head: bytes, body: bytes = b"") -> None:
        with self.lock:
            self.seen.append((index, head, body))

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(30)
            with self.lock:
                index = self.accepted
                self.accepted += 1
                self.conns.append(conn)
                done = threading.Event()
                self.done.append(done)
                self.accepted_cond.notify_all()
            threading.Thread(target=self._run, args=(conn, index, done), daemon=True).start()

    def _run(self, conn: socket.socket, index: int, done: threading.Event) -> None:
        try:
            self.handler(Peer(conn), index, self)
        except (OSError, EOFError):
            pass
        finally:
            done.set()
            conn.close()

    def wait_done(self, index: int, timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        with self.accepted_cond:  # (the connection may not even be accepted yet)
            if not self.accepted_cond.wait_for(lambda: index < len(self.done), timeout):
                return False
            ev = self.done[index]
        return ev.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.release.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def response_bytes(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%b\r\n%b" % (
        status,
        len(body),
        extra,
        body,
    )


def read_until_eof(sock: socket.socket, timeout: float = WAIT) -> tuple[bytes, str]:
    """Everything until the peer closes: (bytes, "eof" | "reset"); fails on timeout."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        except TimeoutError:
            pytest.fail(f"the proxy neither answered nor closed within {timeout}s; got {b''.join(chunks)[:200]!r}")
        if not data:
            return b"".join(chunks), "eof"
        chunks.append(data)
