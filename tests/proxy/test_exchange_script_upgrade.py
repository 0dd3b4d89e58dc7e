"""Scripted exchanges (``script.py``): upgrades (a 101 turns the connection into a tunnel; any
other answer declines it) and malformed requests (400, after the pipelined requests before them)."""

from __future__ import annotations

from .wire import GET, OK, error, forwarded, get, ok

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
FORWARDED_UPGRADE = forwarded(b"GET /ws HTTP/1.1\r\nHost: a\r\n", b"Connection: upgrade", b"Upgrade: websocket")
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"  # (as forwarded)
BAD = b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"  # (a space in a header name)


def counts(backend):
    load = backend.load
    return load.active, load.requests, load.failures


# -- upgrades -------------------------------------------------------------------------


def test_an_accepted_upgrade_relays_raw_bytes_both_ways(script):
    client = script.client()
    client.send(UPGRADE + b"early")
    conn = script.last_connection
    assert conn.received == FORWARDED_UPGRADE  # bytes after the upgrade request wait for the 101
    client.send(b"more")
    conn.reply(SWITCHING + b"hello")
    assert client.received == SWITCHED + b"hello"
    assert conn.received == FORWARDED_UPGRADE + b"earlymore"
    client.send(b"ping")
    conn.reply(b"pong")
    assert conn.received.endswith(b"earlymoreping") and client.received.endswith(b"hellopong")
    assert counts(script.server(0)) == (0, 1, 0)  # the exchange ended with the 101


def test_a_tunnel_passes_half_closes_on_and_closes_once_both_sides_did(script):
    client = script.client()
    client.send(UPGRADE)
    conn = script.last_connection
    conn.reply(SWITCHING)
    client.eof()
    assert conn.half_closed and not client.half_closed
    conn.reply(b"still flowing")
    assert client.received.endswith(b"still flowing") and client.open and conn.open
    conn.close()
    assert client.closed and conn.closed


def test_a_declined_upgrade_never_lets_the_bytes_after_it_reach_the_server(script):
    """What follows an upgrade request could be a smuggled request: a server that answers
    anything but 101 never sees it, and the client connection closes after the answer."""
    client = script.client()
    client.send(UPGRADE + get(b"/smuggled"))
    conn = script.last_connection
    conn.reply(ok(b"no"))
    assert conn.received == FORWARDED_UPGRADE
    assert client.received == ok(b"no", b"Connection: close")
    assert client.closed
    assert conn.open  # the server kept it alive: it may serve another client
    other = script.client()
    other.send(GET)
    assert script.connections == [conn] and b"smuggled" not in conn.received


def test_a_101_to_a_request_that_asked_for_no_upgrade_is_a_502(script):
    client = script.client()
    client.send(GET)
    conn = script.last_connection
    conn.reply(SWITCHING)
    assert client.received == error(502) and client.open
    assert conn.ending == "aborted"
    assert counts(script.server(0)) == (0, 0, 1)


# -- malformed requests ---------------------------------------------------------------


def test_a_malformed_request_is_answered_400_and_closed(script):
    client = script.client()
    client.send(BAD)
    assert client.received == error(400, close=True)
    assert client.closed and script.connections == []


def test_a_request_without_host_is_answered_400(script):
    client = script.client()
    client.send(b"GET / HTTP/1.1\r\n\r\n")
    assert client.received == error(400, close=True) and client.closed


def test_a_malformed_pipelined_request_is_refused_after_the_ones_before_it(script):
    client = script.client()
    client.send(get(b"/1") + get(b"/2") + BAD)
    conn = script.last_connection
    assert client.received == b""
    conn.reply(ok(b"1"))
    assert client.received == ok(b"1") and client.open
    conn.reply(ok(b"2"))
    assert client.received == ok(b"1") + ok(b"2") + error(400, close=True)
    assert client.closed
    assert conn.received == forwarded(b"GET /1 HTTP/1.1\r\nHost: a\r\n") + forwarded(b"GET /2 HTTP/1.1\r\nHost: a\r\n")
    assert conn.open  # the server's connection did nothing wrong


def test_a_malformed_body_in_the_same_read_refuses_the_request_before_it_is_sent(script):
    client = script.client()
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert client.received == error(400, close=True) and client.closed
    assert script.connections == []


def test_a_malformed_request_after_an_answered_one_is_refused_at_once(script):
    client = script.client()
    client.send(GET)
    script.last_connection.reply(OK)
    client.send(BAD)
    assert client.received == OK + error(400, close=True) and client.closed


def test_a_tunnel_whose_server_resets_resets_the_client(script):
    client = script.client()
    client.send(UPGRADE)
    conn = script.last_connection
    conn.reply(SWITCHING + b"partial")
    conn.reset()
    assert client.received == SWITCHED + b"partial" and client.reset  # a cut, not a clean end


def test_a_tunnel_whose_client_resets_resets_the_server_connection(script):
    client = script.client()
    client.send(UPGRADE)
    conn = script.last_connection
    conn.reply(SWITCHING)
    client.gone()
    assert conn.ending == "reset"
