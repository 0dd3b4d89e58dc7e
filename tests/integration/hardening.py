"""Helpers for the hardening tests: a balancer's open file descriptors, a recording server
that answers every request, and raw exchanges that read until the proxy closes."""

from __future__ import annotations

import os
import socket
import time

from .inline import WAIT, Peer, read_until_eof, response_bytes


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid: int, at_most: int, timeout: float = WAIT) -> int:
    """Poll until the process has at most ``at_most`` open descriptors (or the deadline); the last count."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > at_most and time.monotonic() < deadline:
        time.sleep(0.02)
        n = fd_count(pid)
    return n


def recording_handler(peer: Peer, index: int, server) -> None:
    """Record every byte that arrives (as one ``seen`` entry per connection that sent any);
    answer a complete head with 200."""
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            data = peer.sock.recv(65536)
            if not data:
                break
            got += data
        if b"\r\n\r\n" in got:
            peer.sock.sendall(response_bytes(200, b"ok"))
            got += peer.read_all_until_eof()
    finally:
        if got:
            server.record(index, got)


def exchange(port: int, data: bytes, timeout: float = WAIT) -> tuple[bytes, str]:
    """Send ``data`` on a fresh connection, then read until the proxy closes: (bytes, "eof"|"reset")."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        return read_until_eof(sock, timeout)
    finally:
        sock.close()


def status_of(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1.1 "), f"no status line in {answer[:120]!r}"
    return int(line.split()[1])
