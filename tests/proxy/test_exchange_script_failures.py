"""Scripted exchanges (``script.py``): servers that fail (connects refused or timed out, resets,
closes mid-response), the retries that follow, and clients that leave. What the servers' load
records count is part of the behaviour: a failure of the server's is counted against it, an
ending the client caused is not."""

from __future__ import annotations

import pytest

from .wire import FORWARDED_GET, GET, OK, error, forwarded

POST = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
FORWARDED_POST = forwarded(b"POST / HTTP/1.1\r\nHost: a\r\n", b"Content-Length: 2") + b"hi"
PARTIAL = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"  # 3 bytes of a 10-byte body


def counts(backend):
    """(in flight, answered, failed) as the server's load record has them."""
    load = backend.load
    return load.active, load.requests, load.failures


# -- connects that fail -------------------------------------------------------------


@pytest.mark.script(servers=2, retries=1)
def test_a_refused_connect_is_retried_on_another_server_even_for_a_post(script):
    """A refused connect proves the request never arrived: any request may go elsewhere."""
    script.connect_fails(0)
    client = script.client()
    client.send(POST)
    assert script.server(0).connections == []
    conn = script.last_connection
    assert conn.server is script.server(1) and conn.received == FORWARDED_POST
    conn.reply(OK)
    assert client.received == OK and client.open
    assert counts(script.server(0)) == (0, 0, 1)  # the refusal counts against s0
    assert counts(script.server(1)) == (0, 1, 0)


@pytest.mark.script(servers=3, retries=1)
def test_a_refused_connect_is_not_retried_past_retries(script):
    script.connect_fails(0)
    script.connect_fails(1)
    client = script.client()
    client.send(GET)
    assert client.received == error(502) and client.open  # s2 is never tried: one retry only
    assert script.connections == []
    assert [counts(script.server(i)) for i in range(3)] == [(0, 0, 1), (0, 0, 1), (0, 0, 0)]


@pytest.mark.script(servers=2)
def test_without_retries_a_refused_connect_is_a_502(script):
    script.connect_fails(0)
    client = script.client()
    client.send(GET)
    assert client.received == error(502) and client.open
    client.send(GET)  # the connection goes on: the next request goes to the next server
    script.last_connection.reply(OK)
    assert client.received == error(502) + OK
    assert script.last_connection.server is script.server(1)


@pytest.mark.script(servers=2)
def test_steelyards_own_answer_to_a_head_request_has_no_body(script):
    script.connect_fails(0)
    client = script.client()
    client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    answer = error(502)
    assert client.received == answer[: answer.index(b"\r\n\r\n") + 4] and client.open
    client.send(GET)  # (a body would have been read as this request's answer)
    script.last_connection.reply(OK)
    assert client.received.endswith(b"\r\n\r\n" + OK)


@pytest.mark.script(servers=2, retries=1, connect_timeout=2.0)
def test_a_connect_that_times_out_is_retried_on_another_server(script):
    script.connect_fails(0, "timeout")
    client = script.client()
    client.send(GET)
    script.tick(1.9)
    assert script.connections == [] and client.received == b""
    assert counts(script.server(0)) == (1, 0, 0)  # waiting for the connect
    script.tick(0.2)
    assert script.last_connection.server is script.server(1)
    script.last_connection.reply(OK)
    assert client.received == OK
    assert counts(script.server(0)) == (0, 0, 1)


@pytest.mark.script(connect_timeout=2.0)
def test_without_retries_a_connect_timeout_is_a_504(script):
    script.connect_fails(0, "timeout")
    client = script.client()
    client.send(GET)
    script.tick(2.1)
    assert client.received == error(504) and client.open
    assert counts(script.server(0)) == (0, 0, 1)


def test_a_client_that_leaves_while_its_connect_is_pending_blames_no_server(script):
    script.connect_fails(0, "timeout")
    client = script.client()
    client.send(GET)
    client.gone()
    script.connect_succeeds(0)  # the connect completes after all: the connection is kept idle
    assert counts(script.server(0)) == (0, 0, 0)
    other = script.client()
    other.send(GET)
    assert script.connections[0].received == FORWARDED_GET  # (the same, warm connection)
    assert len(script.connections) == 1


# -- resets and closes --------------------------------------------------------------


@pytest.mark.script(servers=2, retries=1)
def test_a_get_whose_connection_resets_after_it_was_sent_is_retried_elsewhere(script):
    client = script.client()
    client.send(GET)
    first = script.last_connection
    first.reset()
    second = script.last_connection
    assert second.server is script.server(1) and second.received == FORWARDED_GET
    assert first.received == FORWARDED_GET and client.received == b""
    second.reply(OK)
    assert client.received == OK and client.open
    assert counts(script.server(0)) == (0, 0, 1) and counts(script.server(1)) == (0, 1, 0)


@pytest.mark.script(servers=2, retries=1)
def test_a_post_whose_connection_resets_after_it_was_sent_is_a_502(script):
    """It may have reached the server: it is not sent twice."""
    client = script.client()
    client.send(POST)
    script.last_connection.reset()
    assert script.connections == script.server(0).connections  # no other server got it
    assert client.received == error(502) and client.open
    assert counts(script.server(0)) == (0, 0, 1)


def test_a_reused_connection_the_server_closed_as_a_get_went_out_is_replaced(script):
    """The keep-alive race: the server closed an idle connection just as a request was sent on
    it. A replayable request goes once more, on a fresh connection to the same server, without
    counting as a retry or a failure."""
    client = script.client()
    client.send(GET)
    first = script.last_connection
    first.reply(OK)
    client.send(GET)
    first.close()  # nothing answered on the reused connection
    fresh = script.last_connection
    assert fresh is not first and fresh.server is script.server(0)
    assert first.received == FORWARDED_GET * 2 and fresh.received == FORWARDED_GET
    fresh.reply(OK)
    assert client.received == OK * 2
    assert counts(script.server(0)) == (0, 2, 0)


@pytest.mark.parametrize("end", ["reset", "close"])
def test_a_server_that_ends_its_connection_mid_response_gets_the_client_reset(script, end):
    """Half a response cannot be repaired: the client must see a cut, not a clean end."""
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(PARTIAL)
    getattr(conn, end)()
    assert client.received == PARTIAL
    assert client.reset
    assert counts(script.server(0)) == (0, 0, 1)


def test_an_http10_client_gets_a_reset_when_a_close_delimited_body_is_cut(script):
    client = script.client()
    client.send(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\n\r\nabc")
    conn.reset()
    assert client.received == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"
    assert client.reset


def test_a_close_delimited_body_ended_by_a_clean_close_is_a_success(script):
    client = script.client()
    client.send(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\n\r\nabc")
    conn.close()
    assert client.received == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc"
    assert client.closed
    assert counts(script.server(0)) == (0, 1, 0)


def test_a_server_that_answers_before_the_body_is_in_gets_both_connections_closed(script):
    """The rest of the request body would never be read: neither connection can go on, and the
    answer says so (a client that keeps uploading must not mistake the close for a failure)."""
    client = script.client()
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert client.received == b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert client.closed and conn.closed
    assert counts(script.server(0)) == (0, 1, 0)


# -- clients that leave -------------------------------------------------------------


def test_a_client_that_leaves_mid_response_aborts_the_server_connection(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(PARTIAL)
    client.gone()
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 0)  # neither the server's success nor its failure
    assert script.server(0).load.fail_streak == 0


def test_a_client_that_leaves_mid_upload_aborts_the_server_connection(script):
    client = script.client()
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn = script.last_connection
    client.gone()
    assert conn.received == forwarded(b"POST / HTTP/1.1\r\nHost: a\r\n", b"Content-Length: 10") + b"abc"
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 0)


def test_a_client_that_leaves_while_the_server_thinks_aborts_the_server_connection(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    client.gone()
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 0)
    client2 = script.client()
    client2.send(GET)
    assert script.last_connection is not conn  # an aborted connection is never reused
