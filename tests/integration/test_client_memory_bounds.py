"""What one client connection may make the balancer hold is bounded (docs/security.md), as
HAProxy and nginx bound theirs: pipelined requests whose answers it never reads are parsed only
up to ``PIPELINE_MAX`` ahead; the rest of what it sent waits as bytes (at most one read) and the
balancer stops reading from it. (Bodies waiting for a connection: tests/proxy/test_client_buffer_bounds.py.)"""

from __future__ import annotations

import socket

from .conftest import address_config, pool_config, servers_toml
from .inline import WAIT

CONNECTIONS = 200
PER_CONNECTION = 256 * 1024
REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def stalling_handler(peer, index, server) -> None:
    """Take the first request and never answer (the pipelined ones all wait behind it)."""
    peer.head()
    server.record(index, b"")
    server.release.wait(WAIT * 3)


def test_pipelined_requests_from_clients_that_never_read_cost_bounded_memory(inline, balancer):
    server = inline(stalling_handler)
    bal = balancer(address_config(server.port, "max_idle = 0"))
    before = bal.rss_kib()
    payload = REQUEST * (PER_CONNECTION // len(REQUEST))
    clients = []
    try:
        for _ in range(CONNECTIONS):
            c = socket.create_connection(("127.0.0.1", bal.port), timeout=WAIT)
            c.setblocking(False)
            clients.append([c, memoryview(payload)])
        # send what the kernel takes (the balancer stops reading once it holds enough)
        for c, rest in clients:
            try:
                c.send(rest)
            except BlockingIOError:
                pass
        with server.accepted_cond:  # every connection's first request reached the server
            assert server.accepted_cond.wait_for(lambda: server.accepted >= CONNECTIONS, WAIT * 3)
        grown = bal.rss_kib() - before
        # unbounded, 200 connections grew it by 570-820 MiB; bounded, by about 40 MiB
        assert grown < 128 * 1024, f"the balancer grew by {grown // 1024} MiB"
    finally:
        for c, _ in clients:
            c.close()
        server.release.set()


def test_a_rate_limited_pipelining_client_gets_every_answer_in_order(backends, balancer):
    """Past its burst each request is answered 429 at once while held bytes are parsed; the
    connection must keep reading until every request is answered (it hung after ~190)."""
    (a,) = backends(["a"])
    config = pool_config(servers_toml([a])).replace(
        'pool = "app"\n', 'pool = "app"\n        rate_limit = { rate = 1, burst = 40 }\n', 1
    )
    bal = balancer(config)
    n = 1500
    pad = b"X-Pad: %b\r\n" % (b"p" * 300)  # (fewer requests per 4 KiB slice than PIPELINE_MAX)
    answers = bytearray()
    with socket.create_connection(("127.0.0.1", bal.port), timeout=WAIT) as c:
        c.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n%b\r\n" % (i, pad) for i in range(n)))
        c.shutdown(socket.SHUT_WR)  # (half-closed: every answer comes, then the end)
        while chunk := c.recv(65536):
            answers += chunk
    statuses = [a[:3] for a in bytes(answers).split(b"HTTP/1.1 ")[1:]]
    assert statuses[:40] == [b"200"] * 40 and statuses.count(b"429") >= n - 45 and len(statuses) == n
