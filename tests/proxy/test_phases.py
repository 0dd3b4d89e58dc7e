"""steelyard.proxy.http.phases: the filter phases of a request through the real protocols (fake
transports): order, sync and async calls, answers, failures, routing by ctx.pool, retries."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server
from steelyard.filters import Filter, Response
from steelyard.proxy.http import request
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.dispatch import SENT
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Route, Router
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

from .fakes import Transport, use_filters

GET = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Site:
    """Pools ``app`` (the default) and ``api`` (route ``/api/``), ``servers`` servers each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, servers: int = 1, retries: int = 0, max_conns: int = 0) -> None:
        self.loop = loop
        self.cps: dict[str, ConnPool] = {}
        pools = {}
        for name in ("app", "api"):
            members = [
                Server(name=f"{name}{i}", host="127.0.0.1", port=9000 + i, max_conns=max_conns) for i in range(servers)
            ]
            pools[name] = PoolRuntime(
                name, "round_robin", BalancerOptions(), members, make_upstream=self._cp, rng=random.Random(1),
                clock=loop.time, timeout=30.0, retries=retries, max_queue=10 if max_conns else 0,
            )  # fmt: skip
        self.route = Route(pools["api"], path_prefix="/api/")
        self.listener = HttpListener(
            "web",
            "127.0.0.1",
            0,
            Router(pools["app"], [self.route]),
            loop=loop,
            keepalive_timeout=60,
            request_timeout=30,
        )
        self.pools = pools

    def _cp(self, server: Server) -> ConnPool:
        cp = self.cps[server.name] = ConnPool(
            server, self.loop, max_idle=8, idle_timeout=60, connect_timeout=1, timeout=30
        )
        return cp

    def conn(self, server: str) -> UpstreamConnection:
        conn = UpstreamConnection(self.cps[server])
        conn.connection_made(Transport())
        self.cps[server].release(conn)
        return conn

    def client(self) -> DownstreamProtocol:
        down = DownstreamProtocol(self.listener)
        down.connection_made(Transport())
        return down


@pytest.fixture
def make(loop):
    request.SPARE.clear()
    yield lambda **kw: Site(loop, **kw)
    request.SPARE.clear()


def run_until(loop: asyncio.AbstractEventLoop, done, turns: int = 200) -> None:
    """Turn the loop (once at least) until ``done()``, for at most ``turns`` turns."""
    for _ in range(turns):
        loop.run_until_complete(asyncio.sleep(0))
        if done():
            return
    raise AssertionError("the loop never got there")


class Trace(Filter):
    """Appends (its tag, the phase) to ``options["trace"]`` in every phase."""

    def request_filter(self, req, ctx):
        self.options["trace"].append((self.options["tag"], "request"))

    def upstream_request_filter(self, req, ctx):
        self.options["trace"].append((self.options["tag"], "upstream", ctx.server))

    def response_filter(self, resp, ctx):
        self.options["trace"].append((self.options["tag"], "response"))

    def logging(self, req, resp, ctx):
        self.options["trace"].append((self.options["tag"], "logging", ctx.status))


def test_listener_filters_run_before_the_routes_in_order_phase_by_phase(make):
    site = make()
    trace: list = []
    tag = lambda t: (t, Trace({"trace": trace, "tag": t}))  # noqa: E731
    use_filters(site.listener, tag("L1"), tag("L2"), routes={site.route: [tag("R1")]})
    conn = site.conn("api0")
    site.client().data_received(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.data_received(OK)
    assert trace == [
        ("L1", "request"), ("L2", "request"), ("R1", "request"),
        ("L1", "upstream", "api0"), ("L2", "upstream", "api0"), ("R1", "upstream", "api0"),
        ("L1", "response"), ("L2", "response"), ("R1", "response"),
        ("L1", "logging", 200), ("L2", "logging", 200), ("R1", "logging", 200),
    ]  # fmt: skip
    trace.clear()
    conn = site.conn("app0")
    site.client().data_received(GET)  # (no route: the route's filter is not in its way)
    conn.data_received(OK)
    assert [t for t, *_ in trace] == ["L1", "L2"] * 4


class Edit(Filter):
    def request_filter(self, req, ctx):
        req.headers.set("X-Tag", self.options.get("value", "v"))
        req.headers.set("X-Forwarded-For", "10.9.9.9")
        req.path = "/rewritten"
        ctx.vars["seen"] = req.method

    def response_filter(self, resp, ctx):
        resp.headers.add("X-Seen", f"{resp.status} {ctx.vars['seen']}")
        resp.headers.remove("Server")


def test_changes_reach_the_server_and_the_client(make):
    site = make()
    use_filters(site.listener, ("edit", Edit({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /a?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\n\r\n")
    sent = conn.transport.out[0]
    assert sent.startswith(b"GET /rewritten?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\nX-Tag: v\r\n")
    assert b"X-Forwarded-For: 10.9.9.9, 127.0.0.1\r\n" in sent  # (the client's address appended)
    conn.data_received(b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok")
    assert down.transport.out == [b"HTTP/1.1 200 OK\r\nX-Seen: 200 GET\r\nContent-Length: 2\r\n\r\nok"]


class Deny(Filter):
    def request_filter(self, req, ctx):
        if req.path == "/deny":
            return Response(403, {"X-Why": "denied"}, "no\n")
        return None


def test_a_response_answers_at_once_and_the_connection_goes_on(make):
    site = make()
    use_filters(site.listener, ("deny", Deny({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /deny HTTP/1.1\r\nHost: a\r\n\r\n" + GET)  # (pipelined behind it)
    assert down.transport.out[0] == b"HTTP/1.1 403 Forbidden\r\nX-Why: denied\r\nContent-Length: 3\r\n\r\nno\n"
    assert conn.transport.out and conn.transport.out[0].startswith(b"GET /a ")
    conn.data_received(OK)
    assert down.transport.out[1].startswith(b"HTTP/1.1 200 OK") and not down.transport.closed


def test_a_request_with_an_unread_body_is_answered_and_closed(make):
    site = make()
    use_filters(site.listener, ("deny", Deny({})))
    down = site.client()
    down.data_received(b"POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart")
    assert down.transport.out[0].endswith(b"Connection: close\r\n\r\nno\n") and down.transport.closed


class Boom(Filter):
    def request_filter(self, req, ctx):
        if req.path == "/boom":
            raise ValueError("boom")
        return None


def test_a_raising_filter_answers_500_for_that_request_only_logged_once_a_second(make, caplog):
    site = make()
    use_filters(site.listener, ("mypkg.filters:Boom", Boom({})))
    down = site.client()
    conn = site.conn("app0")
    with caplog.at_level(logging.ERROR, logger="steelyard.filters"):
        down.data_received(b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n" * 3 + GET)
    assert [o[:12] for o in down.transport.out] == [b"HTTP/1.1 500"] * 3
    conn.data_received(OK)
    assert down.transport.out[3].startswith(b"HTTP/1.1 200")
    lines = [r.getMessage() for r in caplog.records]
    assert (
        len(lines) == 1 and "mypkg.filters:Boom failed in request_filter" in lines[0] and "ValueError: boom" in lines[0]
    )


class Sleepy(Filter):
    """Waits for ``options["go"]`` (an asyncio.Event) in the phase ``options["phase"]``."""

    async def _wait(self):
        await self.options["go"].wait()
        if self.options.get("raise"):
            raise RuntimeError("late failure")

    async def request_filter(self, req, ctx):
        if self.options["phase"] == "request":
            await self._wait()
            req.headers.set("X-Async", "1")

    async def response_filter(self, resp, ctx):
        if self.options["phase"] == "response":
            await self._wait()
            resp.headers.set("X-Async", "1")


def test_an_awaited_request_filter_holds_the_request_until_it_is_done(make, loop):
    site = make()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "request"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: True)
    assert conn.transport.out == []  # nothing sent while the filter waits
    go.set()
    run_until(loop, lambda: conn.transport.out)
    assert b"X-Async: 1\r\n" in conn.transport.out[0]


def test_a_client_that_leaves_while_a_filter_waits_gets_nothing_sent(make, loop):
    site = make()
    go = asyncio.Event()
    seen: list = []

    class Log(Filter):
        def logging(self, req, resp, ctx):
            seen.append((resp, ctx.status))

    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "request"})), ("log", Log({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: True)
    down.connection_lost(None)
    go.set()
    run_until(loop, lambda: True)
    assert conn.transport.out == [] and seen == [(None, 0)]


def test_an_awaited_response_filter_holds_the_response_and_pauses_the_server(make, loop):
    site = make()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "response"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: conn.transport.out)  # (its request_filter is a coroutine too)
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok")
    assert down.transport.out == []  # (held: the server's response was complete, its connection went back idle)
    assert site.cps["app0"].idle and conn.transport.reading and down.current is not None
    go.set()
    run_until(loop, lambda: down.transport.out)
    assert b"".join(down.transport.out) == (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: s\r\nX-Async: 1\r\nContent-Length: 2\r\n\r\nok"
    )
    assert down.current is None and site.pools["app"].snapshot.servers[0].load.requests == 1


def test_a_held_response_still_coming_resumes_once_released(make, loop):
    site = make()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "response"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: conn.transport.out)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
    assert not conn.transport.reading and down.transport.out == []
    go.set()
    run_until(loop, lambda: down.transport.out)
    assert conn.transport.reading and down.current is not None
    conn.data_received(b"!!")
    assert b"".join(down.transport.out).endswith(b"X-Async: 1\r\nContent-Length: 4\r\n\r\nok!!")
    assert down.current is None


def test_an_awaited_response_filter_that_fails_answers_500(make, loop):
    site = make()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "response", "raise": True})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: conn.transport.out)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
    go.set()
    run_until(loop, lambda: down.transport.out)
    assert down.transport.out[0].startswith(b"HTTP/1.1 500") and conn.transport.closed
    assert site.pools["app"].snapshot.servers[0].load.failures == 0  # (the server answered)


class BadResponse(Filter):
    def response_filter(self, resp, ctx):
        raise KeyError("x")


def test_a_response_filter_that_raises_answers_500_and_drops_the_servers_response(make):
    site = make()
    use_filters(site.listener, ("bad", BadResponse({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert down.transport.out[0].startswith(b"HTTP/1.1 500") and conn.transport.closed and down.current is None
    assert not site.cps["app0"].idle


class Forever(Filter):
    async def request_filter(self, req, ctx):
        await asyncio.Event().wait()


def test_a_filter_that_never_finishes_times_out_with_500(make, loop):
    site = make()
    use_filters(site.listener, ("forever", Forever({})))
    site.listener.filters.timeout = 0.01  # (the listener's request_timeout)
    down = site.client()
    down.data_received(GET)
    run_until(loop, lambda: down.transport.out, turns=10_000)
    assert down.transport.out[0].startswith(b"HTTP/1.1 500")


class ToPool(Filter):
    def request_filter(self, req, ctx):
        ctx.pool = req.headers.get("X-Pool") or ctx.pool


def test_setting_ctx_pool_routes_there_and_an_unknown_pool_is_a_500(make, caplog):
    site = make()
    use_filters(site.listener, ("topool", ToPool({})))
    conn, down = site.conn("api0"), site.client()
    down.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Pool: api\r\n\r\n")
    assert conn.transport.out  # (not the default pool's server)
    conn.data_received(OK)
    with caplog.at_level(logging.ERROR, logger="steelyard.filters"):
        down.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Pool: nope\r\n\r\n")
    assert down.transport.out[-1].startswith(b"HTTP/1.1 500")
    assert "there is no such pool; pools are: app, api" in caplog.text


class Wrong(Filter):
    def response_filter(self, resp, ctx):
        return "yes"


def test_a_filter_returning_something_unexpected_fails(make, caplog):
    site = make()
    use_filters(site.listener, ("wrong", Wrong({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    conn.data_received(OK)
    assert down.transport.out[0].startswith(b"HTTP/1.1 500") and "returned str; expected None" in caplog.text


def test_upstream_request_filter_runs_per_try(make):
    site = make(servers=2, retries=1)
    trace: list = []
    use_filters(site.listener, ("trace", Trace({"trace": trace, "tag": "t"})))
    first, second = site.conn("app0"), site.conn("app1")
    down = site.client()
    down.data_received(GET)
    assert first.transport.out and not second.transport.out
    first.fail(502, SENT)  # (the first server broke the connection: the request may go elsewhere)
    second.data_received(OK)
    assert [x for x in trace if x[1] == "upstream"] == [("t", "upstream", "app0"), ("t", "upstream", "app1")]
    assert down.transport.out[0].startswith(b"HTTP/1.1 200") and trace[-1] == ("t", "logging", 200)


class Logs(Filter):
    def __init__(self, options):
        super().__init__(options)
        self.seen = options["seen"]

    async def logging(self, req, resp, ctx):
        if self.options.get("raise"):
            raise RuntimeError("log failure")
        self.seen.append((req.path, resp.status if resp else None, ctx.status, ctx.duration >= 0, ctx.server))


def test_logging_sees_answers_of_steelyard_and_a_failing_one_does_not_stop_the_next(make, loop, monkeypatch):
    monkeypatch.setattr(ConnPool, "connect_for", lambda self, ex, down: None)
    site = make()
    seen: list = []
    use_filters(
        site.listener, ("deny", Deny({})), ("bad", Logs({"seen": seen, "raise": True})), ("logs", Logs({"seen": seen}))
    )
    down = site.client()
    down.data_received(b"GET /deny HTTP/1.1\r\nHost: a\r\n\r\n")
    down.data_received(GET)  # (no connection to the server is ready: it would connect; it fails)
    down.exchange_failed(down.current, 502, False)
    run_until(loop, lambda: len(seen) == 2)
    assert seen == [("/deny", 403, 403, True, None), ("/a", 502, 502, True, "app0")]


def test_a_queued_request_runs_its_upstream_phase_once_a_place_is_free(make):
    site = make(max_conns=1)
    trace: list = []
    use_filters(site.listener, ("trace", Trace({"trace": trace, "tag": "t"})))
    conn = site.conn("app0")
    first, second = site.client(), site.client()
    first.data_received(GET)
    second.data_received(GET)  # (the server is at its max_conns: this one waits in the queue)
    assert len(conn.transport.out) == 1 and len(site.pools["app"].waiting) == 1
    conn.data_received(OK)  # (the first ends: the place goes to the second, on the same connection)
    assert len(conn.transport.out) == 2
    conn.data_received(OK)
    assert [x[1] for x in trace].count("upstream") == 2 and second.transport.out[0].startswith(b"HTTP/1.1 200")


def test_chains_hold_only_the_phases_a_filter_defines_and_logging_needs_a_recorder(make):
    site = make()
    assert site.listener.filters is None and site.listener.access is None
    use_filters(site.listener, ("deny", Deny({})))
    lf = site.listener.filters
    assert [e.name for _, e in lf.request] == ["deny"] and not lf.base.upstream and not lf.base.response
    assert site.listener.access is None  # (no filter logs: endings record nothing more)
    use_filters(site.listener, ("trace", Trace({"trace": [], "tag": "t"})))
    assert type(site.listener.access).__name__ == "Recorder"
    use_filters(site.listener)  # (nothing configured any more)
    assert site.listener.access is None


def test_requests_keep_their_header_list_when_a_filter_may_send_them_to_a_hashing_pool(make):
    site = make()
    site.pools["api"].key_kind = "header"
    assert not site.listener.keep_headers
    use_filters(site.listener, ("topool", ToPool({})))
    assert site.listener.keep_headers


def test_pipelined_requests_wait_their_turn_behind_an_awaited_filter(make, loop):
    site = make()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "request"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    go.set()
    run_until(loop, lambda: conn.transport.out)
    conn.data_received(OK)  # (its response_filter is a coroutine too: each response waits a turn)
    run_until(loop, lambda: len(conn.transport.out) == 2)
    conn.data_received(OK)
    run_until(loop, lambda: len(down.transport.out) == 2)
    assert [o.split(b" ")[1] for o in conn.transport.out] == [b"/1", b"/2"] and down.current is None


def test_an_upgrade_through_filters_becomes_a_tunnel_and_is_logged_as_101(make):
    site = make()
    trace: list = []
    use_filters(site.listener, ("trace", Trace({"trace": trace, "tag": "t"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
    assert conn.transport.out[0].startswith(b"GET /ws HTTP/1.1\r\n")
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert down.tunnel is not None and conn.transport.out[-1] == b"early"
    assert [x[1] for x in trace] == ["request", "upstream", "logging"] and trace[-1] == ("t", "logging", 101)
