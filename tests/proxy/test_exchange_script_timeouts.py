"""Scripted exchanges (``script.py``): timeouts, max_conns and its queue, and a graceful stop.

Timeouts are enforced by a periodic sweep, so each one fires within a sweep interval or two
after its limit (1 s here: a quarter of the shortest timeout, at most 1 s) and never before it:
the scripts tick to just under a limit, then past it."""

from __future__ import annotations

import pytest

from .wire import FORWARDED_GET, GET, OK, busy, error, forwarded, get, ok

TIMEOUTS = {"request_timeout": 10.0, "keepalive_timeout": 20.0, "timeout": 15.0}


def counts(backend):
    load = backend.load
    return load.active, load.requests, load.failures


# -- timeouts -------------------------------------------------------------------------


@pytest.mark.script(**TIMEOUTS)
def test_a_request_head_that_stalls_is_answered_408(script):
    client = script.client()
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
    script.tick(9.9)
    assert client.received == b"" and client.open
    script.tick(2.5)
    assert client.received == error(408, close=True)
    assert client.closed and script.connections == []


@pytest.mark.script(**TIMEOUTS)
def test_a_connection_that_never_sends_a_byte_is_closed_after_the_request_timeout(script):
    client = script.client()
    script.tick(9.9)
    assert client.open
    script.tick(2.5)
    assert client.closed and client.received == b""


@pytest.mark.script(**TIMEOUTS)
def test_a_request_body_that_stalls_is_answered_408_and_blames_no_server(script):
    client = script.client()
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    conn = script.last_connection
    script.tick(9.9)
    assert client.received == b""
    script.tick(2.5)
    assert client.received == error(408, close=True) and client.closed
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 0)


@pytest.mark.script(**TIMEOUTS)
def test_a_silent_server_is_answered_504_and_counted_as_failing(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    script.tick(14.9)
    assert client.received == b""
    script.tick(2.5)
    assert client.received == error(504) and client.open
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 1)


@pytest.mark.script(servers=2, retries=1, try_timeout=5.0, **TIMEOUTS)
def test_a_get_whose_server_does_not_answer_within_try_timeout_goes_to_another(script):
    client = script.client()
    client.send(GET)
    first = script.last_connection
    script.tick(4.9)
    assert script.connections == [first]
    script.tick(2.5)
    second = script.last_connection
    assert second.server is script.server(1) and second.received == FORWARDED_GET
    assert first.ending == "aborted"
    second.reply(OK)
    assert client.received == OK
    assert counts(script.server(0)) == (0, 0, 1) and counts(script.server(1)) == (0, 1, 0)


@pytest.mark.script(**TIMEOUTS)
def test_a_response_that_stalls_midway_cuts_the_client(script):
    client = script.client()
    client.send(GET)
    script.last_connection.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    script.tick(14.9)
    assert client.open
    script.tick(2.5)
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" and client.reset
    assert counts(script.server(0)) == (0, 0, 1)


@pytest.mark.script(**TIMEOUTS)
def test_an_idle_keep_alive_client_is_closed_after_the_keepalive_timeout(script):
    client = script.client()
    client.send(GET)
    script.last_connection.reply(OK)
    script.tick(19.9)
    assert client.open
    script.tick(2.5)
    assert client.closed and client.received == OK


@pytest.mark.script(idle_timeout=5.0)
def test_an_idle_server_connection_is_closed_after_the_pools_idle_timeout(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(OK)
    script.tick(4.9)
    assert conn.open
    script.tick(0.5)
    assert conn.closed and client.open
    client.send(GET)
    assert script.last_connection is not conn


# -- max_conns and the queue ---------------------------------------------------------


@pytest.mark.script(max_conns=1, max_queue=1)
def test_past_max_conns_a_request_waits_its_turn_and_past_max_queue_it_gets_503(script):
    first, second, third = script.client(), script.client(), script.client()
    first.send(get(b"/1"))
    second.send(get(b"/2"))
    third.send(get(b"/3"))
    conn = script.last_connection
    assert script.connections == [conn] and conn.received.count(b"GET ") == 1
    assert third.received == busy() and third.open
    assert second.received == b""
    conn.reply(ok(b"1"))
    assert first.received == ok(b"1")
    assert script.connections == [conn] and conn.received.count(b"GET /2 ") == 1  # its turn, same connection
    conn.reply(ok(b"2"))
    assert second.received == ok(b"2")
    assert counts(script.server(0)) == (0, 2, 0)


@pytest.mark.script(max_conns=1, max_queue=1, queue_timeout=5.0)
def test_a_request_that_waits_longer_than_queue_timeout_gets_503(script):
    first, second = script.client(), script.client()
    first.send(GET)
    second.send(GET)
    script.tick(4.9)
    assert second.received == b""
    script.tick(0.5)
    assert second.received == busy() and second.open
    script.last_connection.reply(OK)
    assert first.received == OK
    assert script.last_connection.received == FORWARDED_GET  # the one that gave up never went


@pytest.mark.script(max_conns=1, max_queue=1)
def test_a_waiting_client_that_leaves_never_reaches_a_server(script):
    first, second = script.client(), script.client()
    first.send(get(b"/1"))
    second.send(get(b"/2"))
    second.gone()
    conn = script.last_connection
    conn.reply(ok(b"1"))
    assert conn.received == forwarded(b"GET /1 HTTP/1.1\r\nHost: a\r\n") and conn.open
    assert counts(script.server(0)) == (0, 1, 0)


@pytest.mark.script(max_conns=1, max_queue=1)
def test_a_waiting_client_that_leaves_frees_its_place_in_the_queue(script):
    first, second, third = script.client(), script.client(), script.client()
    first.send(get(b"/1"))
    second.send(get(b"/2"))
    second.gone()
    third.send(get(b"/3"))
    assert third.received == b""  # waits in the place the second gave up (no 503)
    conn = script.last_connection
    conn.reply(ok(b"1"))
    assert conn.received.endswith(forwarded(b"GET /3 HTTP/1.1\r\nHost: a\r\n"))
    conn.reply(ok(b"3"))
    assert third.received == ok(b"3")


# -- a graceful stop ----------------------------------------------------------------


def test_a_stop_answers_the_request_in_flight_with_connection_close(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    script.stop()
    conn.reply(OK)
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert client.closed
    assert counts(script.server(0)) == (0, 1, 0)


def test_a_stop_after_a_head_that_promised_keep_alive_waits_for_the_grace_to_close(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    script.stop()
    conn.reply(b"cd")
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd" and client.open
    client.send(GET)  # a request on its way meanwhile is answered, with a close
    conn.reply(OK)
    assert client.received.endswith(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert client.closed


def test_a_stop_closes_idle_clients_after_a_moment_of_grace(script):
    client = script.client()
    client.send(GET)
    script.last_connection.reply(OK)
    script.stop()
    script.tick(2.9)
    assert client.open
    script.tick(0.2)
    assert client.closed


def test_a_request_still_in_flight_when_the_stop_grace_ends_is_aborted(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    script.stop(grace=10.0)
    script.tick(9.9)
    assert client.open
    script.tick(0.2)
    assert client.ending == "aborted" and client.received == b""
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 0)


def test_a_connection_made_during_a_stop_is_answered_with_close(script):
    script.stop()
    client = script.client()
    client.send(GET)
    script.last_connection.reply(OK)
    assert client.received == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert client.closed
