"""steelyard.proxy.http: a client connection during a graceful stop (a reload's retiring worker,
SIGTERM). A response whose head already promised keep-alive does not end in a close the client
cannot expect: the connection waits, idle, for the listener's moment of grace, and a request that
comes meanwhile is answered with ``Connection: close``. Requests pipelined behind the current one
are dropped, so then the connection closes after it, as before."""

from __future__ import annotations

from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.upstream import UpstreamConnection

from .fakes import Transport

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"


def connect(site) -> tuple[DownstreamProtocol, UpstreamConnection]:
    listener, cp = site
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport())
    cp.release(conn)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    listener.connections.add(down)
    return down, conn


def test_a_response_that_promised_keep_alive_leaves_the_connection_open_for_the_grace(site):
    down, conn = connect(site)
    down.data_received(GET)
    conn.data_received(HEAD + b"ab")  # the head went out: it promised keep-alive
    down.shutdown()
    conn.data_received(b"cd")
    assert not down.transport.closed  # idle, for the moment of grace
    assert b"connection: close" not in b"".join(down.transport.out).lower()
    down.data_received(GET)  # the client's next request, sent as it read the answer
    conn.data_received(HEAD + b"efgh")
    last = down.transport.out[-1]
    assert b"Connection: close" in b"".join(down.transport.out[-2:]) and last.endswith(b"efgh")
    assert down.transport.closed


def test_idle_past_the_moment_of_grace_it_closes(site):
    listener, _ = site
    down, conn = connect(site)
    down.data_received(GET)
    conn.data_received(HEAD + b"ab")
    down.shutdown()
    listener._close_idle()  # the moment of grace is over (this one is still busy: kept)
    assert not down.transport.closed
    conn.data_received(b"cd")
    assert down.transport.closed  # the response ended after the grace: closed at once


def test_with_pipelined_requests_dropped_it_closes_after_the_current_response(site):
    down, conn = connect(site)
    down.data_received(GET + GET)  # the second waits its turn
    conn.data_received(HEAD + b"ab")
    down.shutdown()  # the waiting request is dropped: the connection cannot go on
    conn.data_received(b"cd")
    assert down.transport.closed


def test_a_response_whose_head_had_not_gone_says_close(site):
    down, conn = connect(site)
    down.data_received(GET)
    down.shutdown()
    conn.data_received(HEAD + b"abcd")
    assert b"Connection: close" in b"".join(down.transport.out)
    assert down.transport.closed


def test_a_connection_made_after_the_stop_began_answers_with_close(site):
    listener, _ = site
    listener.shutdown_connections()  # (asyncio makes a connection it accepted a moment earlier only now)
    down, conn = connect(site)
    down.data_received(GET)
    conn.data_received(HEAD + b"abcd")
    assert b"Connection: close" in b"".join(down.transport.out)
    assert down.transport.closed
