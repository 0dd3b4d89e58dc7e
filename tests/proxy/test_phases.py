"""steelyard.proxy.http.phases: the request side of the filter phases through the real protocols
(fake transports): order, changes, answers, failures, awaited calls, routing by ctx.pool, retries
and the queue. The response side and logging: test_phases_response.py."""

from __future__ import annotations

import asyncio
import logging

from steelyard.filters import Filter
from steelyard.proxy.http.dispatch import SENT

from .fakes import use_filters
from .filtersite import GET, OK, Deny, Sleepy, Trace, run_until


def test_listener_filters_run_before_the_routes_in_order_phase_by_phase(filter_site):
    site = filter_site()
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


def test_changes_reach_the_server_and_the_client(filter_site):
    site = filter_site()
    use_filters(site.listener, ("edit", Edit({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /a?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\n\r\n")
    sent = conn.transport.out[0]
    assert sent.startswith(b"GET /rewritten?q=1 HTTP/1.1\r\nHost: a\r\nAccept: x\r\nX-Tag: v\r\n")
    assert b"X-Forwarded-For: 10.9.9.9, 127.0.0.1\r\n" in sent  # (the client's address appended)
    conn.data_received(b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok")
    assert down.transport.out == [b"HTTP/1.1 200 OK\r\nX-Seen: 200 GET\r\nContent-Length: 2\r\n\r\nok"]


def test_a_response_answers_at_once_and_the_connection_goes_on(filter_site):
    site = filter_site()
    use_filters(site.listener, ("deny", Deny({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /deny HTTP/1.1\r\nHost: a\r\n\r\n" + GET)  # (pipelined behind it)
    assert down.transport.out[0] == b"HTTP/1.1 403 Forbidden\r\nX-Why: denied\r\nContent-Length: 3\r\n\r\nno\n"
    assert conn.transport.out and conn.transport.out[0].startswith(b"GET /a ")
    conn.data_received(OK)
    assert down.transport.out[1].startswith(b"HTTP/1.1 200 OK") and not down.transport.closed


def test_a_request_with_an_unread_body_is_answered_and_closed(filter_site):
    site = filter_site()
    use_filters(site.listener, ("deny", Deny({})))
    down = site.client()
    down.data_received(b"POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart")
    assert down.transport.out[0].endswith(b"Connection: close\r\n\r\nno\n") and down.transport.closed


class Boom(Filter):
    def request_filter(self, req, ctx):
        if req.path == "/boom":
            raise ValueError("boom")
        return None


def test_a_raising_filter_answers_500_for_that_request_only_logged_once_a_second(filter_site, caplog):
    site = filter_site()
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


def test_an_awaited_request_filter_holds_the_request_until_it_is_done(filter_site, loop):
    site = filter_site()
    go = asyncio.Event()
    use_filters(site.listener, ("sleepy", Sleepy({"go": go, "phase": "request"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    run_until(loop, lambda: True)
    assert conn.transport.out == []  # nothing sent while the filter waits
    go.set()
    run_until(loop, lambda: conn.transport.out)
    assert b"X-Async: 1\r\n" in conn.transport.out[0]


def test_a_client_that_leaves_while_a_filter_waits_gets_nothing_sent(filter_site, loop):
    site = filter_site()
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


class Forever(Filter):
    async def request_filter(self, req, ctx):
        await asyncio.Event().wait()


def test_a_filter_that_never_finishes_times_out_with_500(filter_site, loop):
    site = filter_site()
    use_filters(site.listener, ("forever", Forever({})))
    site.listener.filters.timeout = 0.01  # (the listener's request_timeout)
    down = site.client()
    down.data_received(GET)
    run_until(loop, lambda: down.transport.out, turns=10_000)
    assert down.transport.out[0].startswith(b"HTTP/1.1 500")


class ToPool(Filter):
    def request_filter(self, req, ctx):
        ctx.pool = req.headers.get("X-Pool") or ctx.pool


def test_setting_ctx_pool_routes_there_and_an_unknown_pool_is_a_500(filter_site, caplog):
    site = filter_site()
    use_filters(site.listener, ("topool", ToPool({})))
    conn, down = site.conn("api0"), site.client()
    down.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Pool: api\r\n\r\n")
    assert conn.transport.out  # (not the default pool's server)
    conn.data_received(OK)
    with caplog.at_level(logging.ERROR, logger="steelyard.filters"):
        down.data_received(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Pool: nope\r\n\r\n")
    assert down.transport.out[-1].startswith(b"HTTP/1.1 500")
    assert "there is no such pool; pools are: app, api" in caplog.text


def test_upstream_request_filter_runs_per_try(filter_site):
    site = filter_site(servers=2, retries=1)
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


def test_a_queued_request_runs_its_upstream_phase_once_a_place_is_free(filter_site):
    site = filter_site(max_conns=1)
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


def test_chains_hold_only_the_phases_a_filter_defines_and_logging_needs_a_recorder(filter_site):
    site = filter_site()
    assert site.listener.filters is None and site.listener.access is None
    use_filters(site.listener, ("deny", Deny({})))
    lf = site.listener.filters
    assert [e.name for _, e in lf.request] == ["deny"] and not lf.base.upstream and not lf.base.response
    assert site.listener.access is None  # (no filter logs: endings record nothing more)
    use_filters(site.listener, ("trace", Trace({"trace": [], "tag": "t"})))
    assert type(site.listener.access).__name__ == "Recorder"
    use_filters(site.listener)  # (nothing configured any more)
    assert site.listener.access is None


def test_requests_keep_their_header_list_when_a_filter_may_send_them_to_a_hashing_pool(filter_site):
    site = filter_site()
    site.pools["api"].key_kind = "header"
    assert not site.listener.keep_headers
    use_filters(site.listener, ("topool", ToPool({})))
    assert site.listener.keep_headers


def test_pipelined_requests_wait_their_turn_behind_an_awaited_filter(filter_site, loop):
    site = filter_site()
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
