"""steelyard.proxy.http: what a client may make one connection hold.

Pipelined requests are parsed ahead of the one being answered only up to ``PIPELINE_MAX`` (plus
what one slice of a read holds); the rest of the read waits as bytes and reading stops, until the
requests before it are answered. Every request is still answered, in order. A body that waits for
a server connection is held as one bytes object (not a piece per chunk) and reading stops past
``PENDING_LIMIT`` bytes."""

from __future__ import annotations

import random
import time

import pytest

from steelyard.core.balancing import BalancerOptions
from steelyard.proxy.http import request
from steelyard.proxy.http.builtin import RateLimit
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.guard import HEAD_STEP, PIPELINE_MAX
from steelyard.proxy.http.router import Route, Router
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

from .fakes import Transport, use_filters

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def get(i: int) -> bytes:
    return b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i


def connect(listener, cp) -> tuple[DownstreamProtocol, UpstreamConnection]:
    conn = UpstreamConnection(cp)
    conn.connection_made(Transport())
    cp.idle.append(conn)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    return down, conn


def test_a_read_full_of_pipelined_requests_is_parsed_only_up_to_the_bound(site):
    listener, cp = site
    down, conn = connect(listener, cp)
    data = b"".join(get(i) for i in range(4000))  # ~120 KiB in one read
    down.data_received(data)
    smallest = len(get(0))
    assert len(down.queue) <= PIPELINE_MAX + HEAD_STEP // smallest
    assert down.held is not None and len(down.held) > len(data) // 2
    assert not down.transport.reading


def test_every_held_request_is_answered_in_order_and_reading_resumes(site):
    listener, cp = site
    down, conn = connect(listener, cp)
    n = 3000
    down.data_received(b"".join(get(i) for i in range(n)))
    for i in range(n):
        sent = conn.transport.out[-1]
        assert sent.startswith(b"GET /%d " % i), (i, sent[:40])
        assert len(down.queue) <= PIPELINE_MAX + HEAD_STEP // len(get(0))
        conn.data_received(OK)
    answers = b"".join(down.transport.out)
    assert answers.count(b"HTTP/1.1 200 OK") == n
    assert down.held is None and down.current is None and not down.queue
    assert down.transport.reading and not down.transport.closed


def test_a_body_bigger_than_a_slice_is_not_held_back(site):
    listener, cp = site
    down, conn = connect(listener, cp)
    body = b"x" * 200_000
    down.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body + get(1))
    sent = b"".join(conn.transport.out)
    assert sent.endswith(body) and down.held is None
    conn.data_received(OK)
    assert conn.transport.out[-1].startswith(b"GET /1 ")


def test_a_body_of_tiny_chunks_waits_for_its_connection_as_one_object_and_bounded(site, monkeypatch):
    listener, cp = site  # no idle server connection: the request waits for a connect (never made here)
    monkeypatch.setattr(ConnPool, "connect_for", lambda self, ex, down: None)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    read = b"1\r\nx\r\n" * 40_000  # one read of 1-byte chunks
    down.data_received(head + read)
    ex = down.current
    assert ex is not None and ex.conn is None
    assert len(ex.pending) == 1 and ex.pending_size == len(ex.pending[0]) == len(read)
    while down.transport.reading:  # more reads, until the buffered bytes pass the limit
        down.data_received(read)
        assert len(ex.pending) == 1
    assert request.PENDING_LIMIT < ex.pending_size <= request.PENDING_LIMIT + len(read)


def route_to_nowhere(listener) -> None:
    """Requests for /none... go to a pool without servers: answered 503 at once."""
    empty = PoolRuntime(
        "none",
        "round_robin",
        BalancerOptions(),
        [],
        make_upstream=lambda s: None,
        rng=random.Random(1),
        clock=time.monotonic,
        timeout=30.0,
    )
    listener.router = Router(listener.router.default, [Route(empty, path_prefix="/none")])


def test_held_requests_answered_at_once_keep_their_order(site):
    """Requests answered without a server (here 503: their route's pool is empty) are answered
    in ``_next`` itself; a held read parsed there must not let a later request of a slice
    overtake those still queued from the slice before it."""
    listener, cp = site
    route_to_nowhere(listener)
    down, conn = connect(listener, cp)
    pad = b"X-Pad: %b\r\n" % (b"p" * 300)  # (fewer than PIPELINE_MAX requests per slice)
    paths = [b"/none/%d" % i if i % 7 or 0 < i < 100 else b"/s%d" % i for i in range(200)]
    down.data_received(b"".join(b"GET %b HTTP/1.1\r\nHost: a\r\n%b\r\n" % (p, pad) for p in paths))
    for _ in range(len(paths)):
        if conn.ex is None:
            break
        path = conn.transport.out[-1].split(b" ")[1]
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(path), path))
    answers = b"".join(down.transport.out).split(b"HTTP/1.1 ")[1:]
    got = [a.rsplit(b"\r\n\r\n", 1)[1] if a.startswith(b"200") else b"503" for a in answers]
    assert got == [b"503" if p.startswith(b"/none") else p for p in paths]


def test_a_malformed_request_in_a_held_read_comes_after_the_answers_before_it(site):
    """The held read is parsed in ``_next`` while requests answered at once (503) leave none
    current: a malformed request there is refused only after those queued before it."""
    listener, cp = site
    route_to_nowhere(listener)
    down, conn = connect(listener, cp)
    pad = b"X-Pad: %b\r\n" % (b"p" * 300)
    reqs = [b"GET /s0 HTTP/1.1\r\nHost: a\r\n%b\r\n" % pad]
    reqs += [b"GET /none/%d HTTP/1.1\r\nHost: a\r\n%b\r\n" % (i, pad) for i in range(1, 60)]
    reqs.append(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
    down.data_received(b"".join(reqs))
    conn.data_received(OK)
    answers = b"".join(down.transport.out).split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200"] + [b"503"] * 59 + [b"400"]
    assert down.transport.closed


def test_a_body_waiting_for_its_connection_grows_in_place_read_after_read(site, monkeypatch):
    """Each read of a waiting body is appended to the one object that holds it, not joined with
    everything before it again: 256 KiB arriving in 100-byte reads would otherwise copy ~340 MB."""
    listener, cp = site
    monkeypatch.setattr(ConnPool, "connect_for", lambda self, ex, down: None)
    down = DownstreamProtocol(listener)
    down.connection_made(Transport())
    down.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100)
    down.data_received(b"x" * 100)
    ex = down.current
    held = ex.pending[0]
    for _ in range(50):
        down.data_received(b"x" * 100)
        assert len(ex.pending) == 1 and ex.pending[0] is held
    assert ex.pending_size == len(held) == 5200


@pytest.mark.parametrize("read_size", [HEAD_STEP, 65536])
def test_a_rate_limited_pipelining_client_gets_every_answer(site, read_size):
    """Past its burst every request is answered 429 at once, inside ``_next`` while it parses
    held bytes; a request begun behind one of those paused reading for its turn, and nothing
    may leave it paused once no request is left in flight (the connection hung)."""
    listener, cp = site
    use_filters(listener, ("rate_limit", RateLimit({"rate": 1, "burst": 40})))
    down, conn = connect(listener, cp)
    pad = b"X-Pad: %b\r\n" % (b"p" * 300)
    n = 600
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n%b\r\n" % (i, pad) for i in range(n))
    at = 0
    for _ in range(10 * n):  # the client sends whenever the balancer reads; the server answers
        if down.transport.reading and at < len(data):
            down.data_received(data[at : at + read_size])
            at += read_size
        elif conn.ex is not None:
            conn.data_received(OK)
        else:
            break
    statuses = [a[:3] for a in b"".join(down.transport.out).split(b"HTTP/1.1 ")[1:]]
    assert statuses == [b"200"] * 40 + [b"429"] * (n - 40)
    assert down.transport.reading and not down.transport.closed


def test_small_reads_do_not_grow_the_queue_past_the_bound(site):
    """Reads of at most ``HEAD_STEP`` bytes are parsed whole, but not while ``PIPELINE_MAX``
    requests wait already: each is held as bytes then, like the rest of a big read."""
    listener, cp = site
    down, conn = connect(listener, cp)
    read = b"".join(get(i % 10) for i in range(HEAD_STEP // len(get(0))))  # as many as one slice holds
    bound = PIPELINE_MAX + HEAD_STEP // len(get(0))
    sent = 0
    for _ in range(30):
        if down.transport.reading:  # the client sends whenever the balancer reads
            down.data_received(read)
            sent += read.count(b"GET ")
        assert len(down.queue) <= bound
        conn.data_received(OK)
    while conn.ex is not None:  # and every request is still answered, in order
        conn.data_received(OK)
    assert b"".join(down.transport.out).count(b"HTTP/1.1 200 OK") == sent
