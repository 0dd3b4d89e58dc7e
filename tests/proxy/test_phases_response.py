"""steelyard.proxy.http.phases and holding: the response side of the filter phases (a response
held while a filter is awaited, failures after the head) and logging, through the real protocols."""

from __future__ import annotations

import asyncio

from steelyard.filters import Filter
from steelyard.proxy.http.connpool import ConnPool

from .fakes import use_filters
from .filtersite import GET, OK, Deny, Sleepy, Trace, run_until


def test_an_awaited_response_filter_holds_the_response_and_pauses_the_server(filter_site, loop):
    site = filter_site()
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


def test_a_held_response_still_coming_resumes_once_released(filter_site, loop):
    site = filter_site()
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


def test_an_awaited_response_filter_that_fails_answers_500(filter_site, loop):
    site = filter_site()
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


def test_a_response_filter_that_raises_answers_500_and_drops_the_servers_response(filter_site):
    site = filter_site()
    use_filters(site.listener, ("bad", BadResponse({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert down.transport.out[0].startswith(b"HTTP/1.1 500") and conn.transport.closed and down.current is None
    assert not site.cps["app0"].idle


class Wrong(Filter):
    def response_filter(self, resp, ctx):
        return "yes"


def test_a_filter_returning_something_unexpected_fails(filter_site, caplog):
    site = filter_site()
    use_filters(site.listener, ("wrong", Wrong({})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(GET)
    conn.data_received(OK)
    assert down.transport.out[0].startswith(b"HTTP/1.1 500") and "returned str; expected None" in caplog.text


class Logs(Filter):
    def __init__(self, options):
        super().__init__(options)
        self.seen = options["seen"]

    async def logging(self, req, resp, ctx):
        if self.options.get("raise"):
            raise RuntimeError("log failure")
        self.seen.append((req.path, resp.status if resp else None, ctx.status, ctx.duration >= 0, ctx.server))


def test_logging_sees_answers_of_steelyard_and_a_failing_one_does_not_stop_the_next(filter_site, loop, monkeypatch):
    monkeypatch.setattr(ConnPool, "connect_for", lambda self, ex, down: None)
    site = filter_site()
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


def test_an_upgrade_through_filters_becomes_a_tunnel_and_is_logged_as_101(filter_site):
    site = filter_site()
    trace: list = []
    use_filters(site.listener, ("trace", Trace({"trace": trace, "tag": "t"})))
    conn, down = site.conn("app0"), site.client()
    down.data_received(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
    assert conn.transport.out[0].startswith(b"GET /ws HTTP/1.1\r\n")
    conn.data_received(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert down.tunnel is not None and conn.transport.out[-1] == b"early"
    assert [x[1] for x in trace] == ["request", "upstream", "logging"] and trace[-1] == ("t", "logging", 101)
