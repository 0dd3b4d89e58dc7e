"""What the filter-phase tests share: two pools behind one listener on fake transports, a loop
that is turned until something happened, and filters that record or wait."""

from __future__ import annotations

import asyncio
import random

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server
from steelyard.filters import Filter, Response
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Route, Router
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

from .fakes import Transport

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


class Deny(Filter):
    def request_filter(self, req, ctx):
        if req.path == "/deny":
            return Response(403, {"X-Why": "denied"}, "no\n")
        return None


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
