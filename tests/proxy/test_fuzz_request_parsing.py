"""Fuzzing the request-parsing path (hypothesis): whatever bytes a client sends, in whatever
splits, no exception escapes ``DownstreamProtocol.data_received``, the work per example is
bounded, and whatever is forwarded to the server is a well-formed head that llhttp parses
back with exactly one framing header.

Runs briefly in ``make test``; longer on demand:
    STEELYARD_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/proxy/test_fuzz_request_parsing.py
"""

from __future__ import annotations

import asyncio
import os

import pytest
from httptools import HttpParserError, HttpRequestParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steelyard.proxy.http import guard
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.upstream import UpstreamConnection

from .fakes import Transport
from .fakes import site as make_site

EXAMPLES = int(os.environ.get("STEELYARD_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    asyncio.set_event_loop(lp)
    yield lp
    lp.close()
    asyncio.set_event_loop(None)


def build(loop):
    listener, cp = make_site(loop)
    listener.max_uri_length, listener.max_parts, listener.max_body = 2048, 4 * 50, 10_000
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport())
    cp.release(conn)
    return down, conn


TOKENS = [
    b"GET",
    b"POST",
    b"OPTIONS",
    b"CONNECT",
    b" ",
    b"/",
    b"/a?b=c",
    b"#",
    b"*",
    b"http://h/x",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b": ",
    b"Host",
    b"host: a",
    b"Content-Length",
    b"Transfer-Encoding",
    b"chunked",
    b"gzip",
    b",",
    b"0",
    b"5",
    b"-1",
    b"ff",
    b";ext=1",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"Connection",
    b"close",
    b"upgrade",
    b"Upgrade: websocket",
    b"X-Forwarded-For",
    b"abc",
]
VALID = (
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    b"GET /g HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
)

token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)
mutated = st.tuples(st.integers(0, len(VALID)), st.integers(0, 8), st.binary(max_size=8)).map(
    lambda t: VALID[: t[0]] + t[2] + VALID[t[0] + t[1] :]
)
payloads = st.one_of(token_soup, mutated, st.binary(max_size=300))


def feed(down, data: bytes, cuts: list[int]) -> None:
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        if cut > last:
            down.data_received(data[last:cut])
            last = cut


class Sink:
    def __init__(self) -> None:
        self.names: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.names.append(name.lower())


def forwarded_heads_parse_back(conn) -> None:
    """Every head steelyard wrote upstream parses with llhttp, with at most one framing header."""
    for chunk in conn.transport.out:
        if not chunk[:1].isalpha():
            continue  # body bytes
        head = chunk.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        sink = Sink()
        try:
            HttpRequestParser(sink).feed_data(head)
        except HttpParserError as exc:
            pytest.fail(f"forwarded head does not parse ({exc}): {head!r}")
        names = sink.names
        assert names.count(b"content-length") + names.count(b"transfer-encoding") <= 1, head


@FUZZ
@given(data=payloads, cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_no_exception_escapes_and_forwarded_heads_are_canonical(loop, data, cuts):
    down, conn = build(loop)
    feed(down, data, cuts)
    forwarded_heads_parse_back(conn)
    if down.current is None:
        assert not down.queue  # nothing waits behind a request that is not being answered
    for task in asyncio.all_tasks(loop):  # (a connect attempt for a second request: never run)
        task.cancel()


@FUZZ
@given(value=st.binary(max_size=80))
def test_host_rule_accepts_exactly_host_and_port(value):
    ok = guard.host_ok(value)
    assert ok == (guard._HOST.fullmatch(value) is not None)
    if ok:
        assert b"/" not in value and b" " not in value and b"@" not in value
