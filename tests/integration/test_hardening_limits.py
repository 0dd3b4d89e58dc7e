"""Limits answer with their documented status (docs/security.md): 413, 414, 431, 429 with
Retry-After, 308 for redirect_https, and connections over max_connections_per_client are
closed; the balancer's descriptors return to their starting count."""

from __future__ import annotations

import signal
import socket
import time

from .hardening import exchange, fd_count, recording_handler, status_of, wait_fds
from .inline import WAIT
from .rawhttp import RawConnection


def limits_config(port: int, listener: str) -> str:
    return f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"
        {listener}

        [[pool]]
        name = "app"
        max_idle = 0
        servers = [ {{ address = "127.0.0.1:{port}" }} ]
    """


def test_size_limits_answer_413_414_431(inline, balancer):
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, 'max_body_size = "1KiB"\nmax_uri_length = 100\nmax_header_count = 10'))
    base = fd_count(bal.pid())
    cases = [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n801\r\n" + b"x" * 2049 + b"\r\n0\r\n\r\n",
            413,
        ),
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 70000 + b"\r\n\r\n", 431),
    ]
    for data, status in cases:
        answer, _ = exchange(bal.port, data)
        assert status_of(answer) == status, answer[:100]
    # at the limits exactly: forwarded
    ok = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n" + b"x" * 1024,
        b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(8))
        + b"Connection: close\r\n\r\n",
    ]
    for data in ok:
        answer, _ = exchange(bal.port, data)
        assert status_of(answer) == 200, answer[:100]
    assert wait_fds(bal.pid(), base) <= base


def test_size_limits_hold_after_a_reload(inline, balancer):
    """A reload keeps the listener (its socket, its connections) and its limits."""
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, 'max_body_size = "1KiB"\nmax_uri_length = 100\nmax_header_count = 10'))
    bal.proc.send_signal(signal.SIGHUP)
    bal.wait_for(r"steelyard: reloaded")
    cases = [
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n801\r\n" + b"x" * 2049 + b"\r\n0\r\n\r\n",
            413,
        ),
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n", 431),
    ]
    for data, status in cases:
        answer, _ = exchange(bal.port, data)
        assert status_of(answer) == status, answer[:100]


def test_rate_limit_answers_429_with_retry_after(inline, balancer):
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, "rate_limit = { rate = 0.5, burst = 3 }"))
    statuses = []
    with RawConnection(bal.port) as c:
        for _ in range(5):  # bounded: the burst, then refusals (the bucket refills at 0.5/s)
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, headers, _ = c.response()
            statuses.append(status)
            if status == 429:
                assert int(headers["retry-after"]) >= 1
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


def test_redirect_https_answers_308_to_the_same_url(inline, balancer):
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, "redirect_https = true"))
    with RawConnection(bal.port) as c:
        c.send(b"GET /a/b?c=d HTTP/1.1\r\nHost: example.test\r\n\r\n")
        status, headers, _ = c.response()
    assert status == 308 and headers["location"] == "https://example.test/a/b?c=d"
    assert server.accepted == 0


def test_redirect_https_drops_the_plain_port_and_names_https_port(inline, balancer):
    server = inline(recording_handler)
    standard = balancer(limits_config(server.port, "redirect_https = true"))
    other = balancer(limits_config(server.port, "redirect_https = true\nhttps_port = 8443"))
    cases = [
        (standard, b"example.test:8080", "https://example.test/p?q"),
        (standard, b"[::1]:8080", "https://[::1]/p?q"),
        (other, b"example.test:8080", "https://example.test:8443/p?q"),
        (other, b"[::1]", "https://[::1]:8443/p?q"),
    ]
    for bal, host, location in cases:
        with RawConnection(bal.port) as c:
            c.send(b"GET /p?q HTTP/1.1\r\nHost: %b\r\n\r\n" % host)
            status, headers, _ = c.response()
        assert (status, headers["location"]) == (308, location)
    assert server.accepted == 0


def test_connections_over_the_per_client_limit_are_closed(inline, balancer):
    server = inline(recording_handler)
    bal = balancer(limits_config(server.port, "max_connections_per_client = 3"))
    base = fd_count(bal.pid())
    held = [socket.create_connection(("127.0.0.1", bal.port), timeout=WAIT) for _ in range(3)]
    try:
        for s in held:  # each is served (so each was accepted and counted)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        extra = socket.create_connection(("127.0.0.1", bal.port), timeout=WAIT)
        with extra:
            extra.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            try:
                got = extra.recv(65536)
            except ConnectionResetError:
                got = b""
            assert got == b""  # closed without an answer
    finally:
        for s in held:
            s.close()
    # the slots come back: once the held connections are gone, a new one is served
    deadline = time.monotonic() + WAIT
    while True:
        answer, _ = exchange(bal.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        if answer or time.monotonic() > deadline:
            break
    assert status_of(answer) == 200
    assert wait_fds(bal.pid(), base) <= base


def test_malformed_response_is_a_502_and_its_connection_is_not_reused(inline, balancer):
    """A response with obsolete line folding (or both framing headers) is a 502; the next request
    goes on a new server connection."""

    def handler(peer, index, server):
        head = peer.head()
        server.record(index, head)
        if index == 0:
            peer.sock.sendall(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok")
        elif index == 1:
            peer.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        else:
            peer.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        peer.read_all_until_eof()

    server = inline(handler)
    bal = balancer(limits_config(server.port, "").replace("max_idle = 0", "max_idle = 4\nretries = 0"))
    for expected in (502, 502, 200):
        with RawConnection(bal.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert c.response()[0] == expected
    assert server.accepted == 3  # each malformed response's connection was dropped


def test_routes_have_their_own_body_size_and_rate_limits(backends, balancer):
    from .conftest import servers_toml

    (a,) = backends(["a"])
    bal = balancer(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [[listener.route]]
        path_prefix = "/upload/"
        pool = "app"
        max_body_size = 100

        [[listener.route]]
        path_prefix = "/api/"
        pool = "app"
        rate_limit = {{ rate = 0.5, burst = 2 }}

        [[pool]]
        name = "app"
        {servers_toml([a])}
    """)

    def post(path: str, body: bytes, chunked: bool = False) -> int:
        with RawConnection(bal.port) as c:
            if chunked:
                c.send(
                    b"POST %b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" % path.encode()
                    + b"".join(
                        b"%x\r\n%b\r\n" % (len(body[i : i + 50]), body[i : i + 50]) for i in range(0, len(body), 50)
                    )
                    + b"0\r\n\r\n"
                )
            else:
                c.send(
                    b"POST %b HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (path.encode(), len(body), body)
                )
            return c.response()[0]

    assert post("/upload/x", b"x" * 100) == 200
    assert post("/upload/x", b"x" * 101) == 413  # Content-Length over the route's limit: never forwarded
    assert post("/upload/x", b"x" * 300, chunked=True) == 413  # a chunked body is counted as it comes
    assert post("/elsewhere", b"x" * 5000) == 200  # the listener itself has no limit
    statuses = []
    with RawConnection(bal.port) as c:
        for _ in range(4):  # bounded: the burst of 2, then refusals (0.5 tokens/s)
            c.send(b"GET /api/v1 HTTP/1.1\r\nHost: a\r\n\r\n")
            status, headers, _ = c.response()
            statuses.append(status)
            if status == 429:
                assert int(headers["retry-after"]) >= 1
        c.send(b"GET /free HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.response()[0] == 200  # other routes are not limited
    assert statuses == [200, 200, 429, 429]
