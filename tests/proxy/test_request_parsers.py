"""steelyard.proxy.http.request: request parsers are lent per request (an idle keep-alive
connection holds none), given back only at the start of a message, never from inside their
own ``feed_data``; what depends on the client address is shared by its connections."""

from __future__ import annotations

import pytest

from steelyard.proxy.http import request
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

from .fakes import Transport

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def upstream(cp, on_write=None) -> UpstreamConnection:
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport(on_write=on_write))
    cp.release(conn)
    return conn


def client(listener, peer: str = "192.0.2.7") -> DownstreamProtocol:
    down = DownstreamProtocol(listener)
    down.connection_made(Transport(peer))
    return down


def test_an_idle_keep_alive_connection_holds_no_parser_and_the_next_one_reuses_it(site):
    listener, cp = site
    conn = upstream(cp)
    a, b = client(listener), client(listener)
    assert a.parser is None and b.parser is None  # nothing arrived yet
    a.data_received(GET)
    lent = a.parser
    assert lent is not None
    conn.data_received(OK)
    assert a.transport.out[-1].endswith(b"ok") and not a.transport.closed
    assert a.parser is None and request.SPARE == [lent]  # idle: given back
    b.data_received(GET)
    assert b.parser is lent and not request.SPARE
    conn.data_received(OK)
    a.data_received(GET)  # the idle connection goes on with the same parser
    assert a.parser is lent
    conn.data_received(OK)
    assert a.transport.out[-1].endswith(b"ok") and b.transport.out[-1].endswith(b"ok")


def test_a_request_split_over_reads_keeps_its_parser_until_the_answer(site):
    listener, cp = site
    conn = upstream(cp)
    down = client(listener)
    down.data_received(GET[:10])
    parser = down.parser
    down.data_received(GET[10:])
    assert down.parser is parser and down.current is not None
    conn.data_received(OK)
    assert down.parser is None and request.SPARE == [parser]


@pytest.mark.parametrize(
    "req",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    ],
)
def test_the_parser_of_a_request_that_ends_its_connection_is_not_given_back(site, req):
    """llhttp is past a message that closes its connection: such a parser must not serve another."""
    listener, cp = site
    conn = upstream(cp)
    down = client(listener)
    down.data_received(req)
    conn.data_received(OK)
    assert down.transport.closed and not request.SPARE


def test_a_malformed_request_does_not_give_its_parser_back(site):
    listener, _ = site
    down = client(listener)
    down.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
    assert down.transport.out[-1].startswith(b"HTTP/1.1 400") and down.transport.closed
    assert not request.SPARE


def test_pipelined_requests_are_answered_in_order_and_the_parser_comes_back_after_the_last(site):
    listener, cp = site
    conn = upstream(cp)
    down = client(listener)
    down.data_received(GET + b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    parser = down.parser
    assert down.current is not None and len(down.queue) == 1
    conn.data_received(OK)
    assert down.parser is parser and not request.SPARE  # the second request is in flight
    assert conn.transport.out[-1].startswith(b"GET /2 ")
    conn.data_received(OK)
    assert down.parser is None and request.SPARE == [parser] and not down.queue
    assert sum(chunk.endswith(b"ok") for chunk in down.transport.out) == 2


def test_an_answer_given_right_after_the_parse_gives_back_a_parser_at_a_message_start(site, monkeypatch):
    """A 503 (no server) is answered once the read is parsed, not from inside llhttp: the request
    is complete by then, so its parser goes back and serves the connection's next request."""
    listener, cp = site
    conn = upstream(cp)
    monkeypatch.setattr(PoolRuntime, "pick", lambda self, ctx, ex, exclude=(): None)
    down = client(listener)
    down.data_received(GET)
    assert down.transport.out[-1].startswith(b"HTTP/1.1 503") and not down.transport.closed
    assert down.parser is None and len(request.SPARE) == 1
    parser = request.SPARE[0]
    monkeypatch.undo()
    down.data_received(GET)
    assert down.parser is parser
    conn.data_received(OK)
    assert down.transport.out[-1].endswith(b"ok") and down.parser is None and request.SPARE == [parser]


def test_a_request_whose_body_is_malformed_in_the_same_read_never_reaches_a_server(site):
    listener, cp = site
    conn = upstream(cp)  # an idle server connection: a dispatched head would be written at once
    down = client(listener)
    down.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n")
    assert down.transport.out[-1].startswith(b"HTTP/1.1 400") and down.transport.closed
    assert conn.transport.out == []


def test_a_request_answered_before_a_malformed_pipelined_one_is_still_sent(site):
    listener, cp = site
    conn = upstream(cp)
    down = client(listener)
    down.data_received(GET + b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
    assert conn.transport.out[-1].startswith(b"GET / ")
    conn.data_received(OK)
    assert down.transport.out[-2].endswith(b"ok") and down.transport.out[-1].startswith(b"HTTP/1.1 400")
    assert down.transport.closed


def test_a_pipelined_request_whose_body_is_malformed_never_reaches_a_server(site):
    """Its head was complete (it waited its turn in the queue) when its body turned out bad:
    the request before it is answered, then the 400; the bad one is never sent."""
    listener, cp = site
    conn = upstream(cp)
    down = client(listener)
    bad = b"POST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    down.data_received(GET + bad)
    conn.data_received(OK)
    assert b"/bad" not in b"".join(conn.transport.out)
    assert down.transport.out[-2].endswith(b"ok") and down.transport.out[-1].startswith(b"HTTP/1.1 400")
    assert down.transport.closed


def test_spare_parsers_are_trimmed_by_the_sweep(site, monkeypatch):
    listener, _ = site
    monkeypatch.setattr(request, "SPARE_MAX", 2)
    request.SPARE.extend(object() for _ in range(5))  # type: ignore[misc]
    listener.sweep(listener.loop.time())
    assert len(request.SPARE) == 2


def test_connections_from_one_address_share_its_values(site):
    listener, _ = site
    a, b, c = client(listener, "192.0.2.7"), client(listener, "192.0.2.7"), client(listener, "198.51.100.1")
    assert a.forwarded is b.forwarded and a.ctx is b.ctx and a.ip is b.ip
    assert a.forwarded == b"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
    assert c.ip == b"198.51.100.1" and c.ctx.client_ip == "198.51.100.1" and c.ctx is not a.ctx


def test_the_per_address_values_are_bounded(site, monkeypatch):
    from steelyard.proxy.http import listener as listener_module

    listener, _ = site
    monkeypatch.setattr(listener_module, "CLIENTS_MAX", 3)
    for i in range(10):
        client(listener, f"192.0.2.{i}")
    assert len(listener.clients) <= 3
    assert client(listener, "192.0.2.9").forwarded.startswith(b"X-Forwarded-For: 192.0.2.9\r\n")
