"""1,000 slowloris connections (each sends part of a head, then nothing) are answered 408 and
closed at the head timeout, while a normal client's requests keep succeeding; afterwards the
balancer's open descriptors are back to their starting count."""

from __future__ import annotations

import selectors
import socket
import time

from .hardening import fd_count, recording_handler, wait_fds
from .rawhttp import RawConnection
from .test_hardening_limits import limits_config

SLOW = 1000
BOUND = 30.0  # seconds: everything below must be over well within this


def test_thousand_slowloris_connections_are_cut_at_the_head_timeout(inline, balancer):
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, 'request_timeout = "1s"'))
    base = fd_count(bal.pid())
    slow: list[socket.socket] = []
    answers: list[bytes] = []
    sel = selectors.DefaultSelector()
    try:
        for i in range(SLOW):
            s = socket.create_connection(("127.0.0.1", bal.port), timeout=BOUND)
            s.sendall(b"GET /slow/%d HTTP/1.1\r\nHost: a\r\nX-Slow: " % i)  # never finished
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, bytearray())
            slow.append(s)
        # a normal client is served meanwhile, on fresh connections and a kept-alive one
        with RawConnection(bal.port) as c:
            for _ in range(5):
                c.send(b"GET /normal HTTP/1.1\r\nHost: a\r\n\r\n")
                assert c.response()[0] == 200
        # every slow connection gets its 408 and is closed, within the bound
        open_ = SLOW
        deadline = time.monotonic() + BOUND
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    key.data.extend(data)
                else:  # closed by the balancer
                    answers.append(bytes(key.data))
                    sel.unregister(key.fileobj)
                    open_ -= 1
        assert open_ == 0, f"{open_} slow connections still open after {BOUND}s"
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers if a)
        assert sum(1 for a in answers if a) >= SLOW * 0.99  # (a reset may rarely eat an answer)
    finally:
        sel.close()
        for s in slow:
            s.close()
    with server.lock:
        assert not any(b"/slow/" in head for _, head, _ in server.seen)  # none reached the server
    assert wait_fds(bal.pid(), base) <= base
    assert bal.proc.poll() is None
