"""Scripted exchanges (``script.py``): keep-alive, pipelining, request bodies and response framing.

Each test is a script of what a client and the servers send, and asserts only what crossed the
wire: the exact bytes each side received, and how each connection ended. The other themes:
``test_exchange_script_failures`` (connect failures, resets, retries, clients that leave),
``test_exchange_script_timeouts`` (timeouts, max_conns and its queue, a graceful stop),
``test_exchange_script_upgrade`` (upgrades, malformed requests)."""

from __future__ import annotations

import pytest

from .wire import FORWARDED_GET, GET, OK, forwarded, get, ok


def test_a_keep_alive_get_and_the_next_one_reuse_the_server_connection(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    assert conn.server is script.server(0)
    assert conn.received == FORWARDED_GET
    conn.reply(OK)
    assert client.received == OK and client.open

    client.send(get(b"/next"))
    assert script.connections == [conn]  # no second connection: the idle one was reused
    assert conn.received == FORWARDED_GET + forwarded(b"GET /next HTTP/1.1\r\nHost: a\r\n")
    conn.reply(ok(b"again"))
    assert client.received == OK + ok(b"again")
    assert client.open and conn.open
    assert (script.server(0).load.requests, script.server(0).load.active) == (2, 0)


@pytest.mark.script(servers=2)
def test_requests_of_one_client_are_balanced_over_the_servers(script):
    client = script.client()
    for path in (b"/1", b"/2", b"/3"):
        client.send(get(path))
        script.last_connection.reply(ok(path))
    assert [c.server.index for c in script.connections] == [0, 1]  # round robin; s0's connection reused
    assert script.server(0).connections[0].received.count(b"GET ") == 2
    assert client.received == ok(b"/1") + ok(b"/2") + ok(b"/3")


@pytest.mark.script(servers=2)
def test_pipelined_requests_are_answered_in_order_and_sent_one_after_another(script):
    """The second of two pipelined requests reaches no server until the first response has
    ended (today they are not sent concurrently), so its answer can never overtake the first."""
    client = script.client()
    client.send(get(b"/1") + get(b"/2"))
    first = script.last_connection
    assert script.connections == [first] and first.received == forwarded(b"GET /1 HTTP/1.1\r\nHost: a\r\n")
    first.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfi")
    assert script.connections == [first]  # half a response: /2 still waits
    first.reply(b"rs")
    second = script.last_connection
    assert second.server is script.server(1)
    assert second.received == forwarded(b"GET /2 HTTP/1.1\r\nHost: a\r\n")
    second.reply(ok(b"second"))
    assert client.received == ok(b"firs") + ok(b"second")
    assert client.open


def test_a_request_pipelined_in_a_later_read_waits_its_turn(script):
    client = script.client()
    client.send(get(b"/1"))
    client.send(get(b"/2"))  # (read once the first is answered: reading stops meanwhile)
    conn = script.last_connection
    assert conn.received == forwarded(b"GET /1 HTTP/1.1\r\nHost: a\r\n")
    conn.reply(ok(b"1"))
    assert conn.received.endswith(forwarded(b"GET /2 HTTP/1.1\r\nHost: a\r\n"))
    conn.reply(ok(b"2"))
    assert client.received == ok(b"1") + ok(b"2") and client.reading


def test_a_content_length_body_is_forwarded_as_it_arrives(script):
    client = script.client()
    client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel")
    conn = script.last_connection
    head = forwarded(b"POST /up HTTP/1.1\r\nHost: a\r\n", b"Content-Length: 5")
    assert conn.received == head + b"hel"
    client.send(b"lo")
    assert conn.received == head + b"hello"
    conn.reply(OK)
    assert client.received == OK and client.open


def test_a_chunked_body_is_forwarded_re_chunked(script):
    """The chunks go on as they come, each framed anew (extensions dropped), trailers dropped."""
    client = script.client()
    client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n")
    conn = script.last_connection
    head = forwarded(b"POST /up HTTP/1.1\r\nHost: a\r\n", b"Transfer-Encoding: chunked")
    assert conn.received == head + b"3\r\nhel\r\n"
    client.send(b"2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert conn.received == head + b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
    conn.reply(OK)
    assert client.received == OK and client.open


def test_a_chunked_response_is_forwarded_re_chunked_to_an_http11_client(script):
    """Chunks go on as they come, framed anew (extensions dropped); trailers are dropped."""
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n")
    assert client.received == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    conn.reply(b"2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert client.received.endswith(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    client.send(GET)
    assert script.connections == [conn] and client.open


def test_a_response_head_split_over_reads_is_forwarded_once_complete(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\nContent-Le")
    conn.reply(b"ngth: 2\r\n")
    assert client.received == b""
    conn.reply(b"\r\no")
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no"
    conn.reply(b"k")
    assert client.received == OK


def test_a_close_delimited_response_goes_chunked_to_an_http11_client(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc")
    conn.reply(b"def")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert client.received == head + b"3\r\nabc\r\n3\r\ndef\r\n"
    conn.close()  # the end of the body
    assert client.received.endswith(b"3\r\ndef\r\n0\r\n\r\n")
    assert client.open and script.server(0).load.requests == 1


def test_a_chunked_response_goes_close_delimited_to_an_http10_client(script):
    client = script.client()
    client.send(get(b"/", b"1.0"))
    conn = script.last_connection
    assert conn.received == forwarded(b"GET / HTTP/1.1\r\nHost: a\r\n")  # (forwarded as HTTP/1.1)
    conn.reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    conn.reply(b"0\r\n\r\n")
    assert client.received == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"
    assert client.closed
    assert conn.open  # the server kept it alive: back in the pool


def test_an_http10_client_that_asks_for_keep_alive_keeps_it(script):
    client = script.client()
    client.send(get(b"/", b"1.0", b"Connection: keep-alive"))
    script.last_connection.reply(OK)
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    assert client.open


def test_an_http11_client_that_says_close_is_closed_after_its_answer(script):
    client = script.client()
    client.send(get(b"/", b"1.1", b"Connection: close"))
    conn = script.last_connection
    assert conn.received == FORWARDED_GET  # (Connection is hop-by-hop)
    conn.reply(OK)
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert client.closed and conn.open


def test_a_response_to_head_has_no_body_and_the_connection_goes_on(script):
    client = script.client()
    client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"
    client.send(GET)
    assert script.connections == [conn]  # the connection is reused, its next response read afresh
    conn.reply(OK)
    assert client.received.endswith(OK) and client.open


@pytest.mark.parametrize(
    ("response", "forwarded_as"),
    [
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (
            b"HTTP/1.1 304 Not Modified\r\nETag: x\r\nContent-Length: 10\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nETag: x\r\nContent-Length: 10\r\n\r\n",
        ),
    ],
    ids=["204", "304"],
)
def test_204_and_304_have_no_body(script, response, forwarded_as):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(response)
    assert client.received == forwarded_as
    client.send(get(b"/next"))
    conn.reply(OK)
    assert client.received == forwarded_as + OK
    assert script.connections == [conn] and client.open


def test_100_continue_is_passed_on_before_the_body(script):
    client = script.client()
    client.send(b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    conn = script.last_connection
    head = forwarded(b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n", b"Content-Length: 3")
    assert conn.received == head
    conn.reply(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert client.received == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(b"abc")
    assert conn.received == head + b"abc"
    conn.reply(OK)
    assert client.received == b"HTTP/1.1 100 Continue\r\n\r\n" + OK and client.open


def test_103_early_hints_reach_an_http11_client_only(script):
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    client = script.client()
    client.send(GET)
    script.last_connection.reply(hints + OK)
    assert client.received == hints + OK
    old = script.client()
    old.send(get(b"/", b"1.0"))
    script.last_connection.reply(hints + OK)
    assert old.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert old.closed


def test_a_server_that_closes_its_connection_after_a_response_leaves_the_client_open(script):
    client = script.client()
    client.send(GET)
    first = script.last_connection
    first.reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert client.received == OK  # (Connection is hop-by-hop: the client's own stays alive)
    assert first.closed and client.open
    client.send(GET)
    assert script.last_connection is not first and script.last_connection.received == FORWARDED_GET


def test_an_idle_server_connection_the_server_closed_is_not_reused(script):
    client = script.client()
    client.send(GET)
    first = script.last_connection
    first.reply(OK)
    first.close()
    client.send(GET)
    assert len(script.connections) == 2 and script.last_connection.received == FORWARDED_GET
    assert first.received == FORWARDED_GET


def test_a_client_that_half_closes_gets_every_pipelined_answer_then_a_close(script):
    client = script.client()
    client.send(get(b"/1") + get(b"/2"))
    client.eof()
    script.last_connection.reply(ok(b"1"))
    assert client.received == ok(b"1") and client.open
    script.last_connection.reply(ok(b"2"))
    assert client.received == ok(b"1") + ok(b"2") and client.closed
