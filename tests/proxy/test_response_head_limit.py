"""steelyard.proxy.http.upstream: a server's response head is limited to ``MAX_HEAD`` bytes
exactly, however the head is split across reads; over it, the client gets a 502."""

from __future__ import annotations

import pytest

from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.upstream import MAX_HEAD, UpstreamConnection

from .fakes import Transport

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def head_of(size: int) -> bytes:
    """A response head of exactly ``size`` bytes (status line to the blank line), 2-byte body."""
    start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def answer(site, response: bytes, splits: list[int]) -> bytes:
    listener, cp = site
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport())
    cp.idle.append(conn)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    down.data_received(GET)
    at = 0
    for cut in [*splits, len(response)]:
        if conn.ex is None:
            break
        conn.data_received(response[at:cut])
        at = cut
    return b"".join(down.transport.out)


@pytest.mark.parametrize("splits", [[], [MAX_HEAD // 2], [MAX_HEAD - 1], [100, MAX_HEAD - 3]])
def test_a_head_of_exactly_the_limit_passes(site, splits):
    out = answer(site, head_of(MAX_HEAD) + b"ok", splits)
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"ok")


@pytest.mark.parametrize("splits", [[], [MAX_HEAD // 2], [MAX_HEAD], [100, MAX_HEAD - 3], [MAX_HEAD - 1]])
def test_a_head_one_byte_over_the_limit_is_a_502(site, splits):
    out = answer(site, head_of(MAX_HEAD + 1) + b"ok", splits)
    assert out.startswith(b"HTTP/1.1 502"), out[:60]


def test_a_head_of_70_kb_in_reads_of_64_kib_is_a_502(site):
    out = answer(site, head_of(70_000) + b"ok", [65536])
    assert out.startswith(b"HTTP/1.1 502"), out[:60]


def test_bytes_after_a_response_that_ends_at_the_limit_never_meet_the_next_request(site, monkeypatch):
    """A response that ends exactly where the limit splits a read, then bytes nobody asked for:
    the connection is not reused for the pipelined request waiting (it would get those bytes,
    or a 502 blamed on its server); the first response is delivered whole."""
    listener, cp = site
    monkeypatch.setattr(ConnPool, "connect_for", lambda self, ex, down: None)  # (request 2 waits for one)
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport())
    cp.idle.append(conn)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    down.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %05d\r\n\r\n"
    size = MAX_HEAD - len(head % 0)
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"
    conn.data_received(head % size + b"b" * size + stray)
    sent = b"".join(conn.transport.out)
    assert b"GET /2" not in sent  # the connection that said too much is not reused
    assert conn.transport.closed
    out = b"".join(down.transport.out)
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"b" * 100), out[-120:]
    assert b"502" not in out and b"stray" not in out
