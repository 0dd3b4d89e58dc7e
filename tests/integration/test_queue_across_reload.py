"""A reload while clients wait in a pool's queue (max_conns): the queue moves to the new pool of
the same name, and a place freed by a connection or request from before the reload (its lease
is on the old pool) still goes to the one waiting longest."""

from __future__ import annotations

import signal
import socket
import threading

from .conftest import address_config
from .inline import response_bytes
from .l4util import WAIT
from .test_l4_limits import Counting, connect, greeting, limited


def test_a_tcp_client_queued_across_a_reload_gets_a_place_freed_from_before_it(inline, balancer) -> None:
    counting = Counting()
    srv = inline(counting)
    lb = balancer(limited("tcp", srv.address, pool='max_queue = 2\nqueue_timeout = "30s"'))
    first = connect(lb)
    assert greeting(first) == b"hello 0\n"
    with connect(lb) as second:
        second.sendall(b"queued\n")
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(r"steelyard: reloaded")
        first.close()  # (its lease is on the pool the reload replaced)
        assert greeting(second) == b"hello 1\n"
        assert greeting(second) == b"queued\n"
    assert counting.most == 1


def test_an_http_request_queued_across_a_reload_gets_a_place_freed_from_before_it(inline, balancer) -> None:
    release = threading.Event()

    def handler(peer, index, server) -> None:
        while True:
            head, _ = peer.request()
            if index == 0:
                release.wait(WAIT)  # the first request holds the one place until the reload is done
            peer.sock.sendall(response_bytes(200, b"%d" % index))

    srv = inline(handler)
    text = address_config(srv.port, 'max_queue = 2\nqueue_timeout = "30s"')
    lb = balancer(text.replace(f'address = "127.0.0.1:{srv.port}"', f'address = "127.0.0.1:{srv.port}", max_conns = 1'))
    first, second = (socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT) for _ in range(2))
    with first, second:
        first.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        with srv.accepted_cond:
            assert srv.accepted_cond.wait_for(lambda: srv.accepted == 1, WAIT)
        second.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")  # (queued: the server is at max_conns)
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(r"steelyard: reloaded")
        release.set()
        assert first.recv(4096).startswith(b"HTTP/1.1 200")
        assert second.recv(4096).startswith(b"HTTP/1.1 200")  # (not a 503 after queue_timeout)
