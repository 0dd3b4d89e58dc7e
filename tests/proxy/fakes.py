"""What the data-plane unit tests share: a transport that records writes, and one HTTP listener in
front of a round-robin pool of one server whose connection pool the test fills itself."""

from __future__ import annotations

import asyncio
import random

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Router
from steelyard.proxy.pool import PoolRuntime


class Transport:
    def __init__(self, peer: str = "127.0.0.1", on_write=None) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.peer = peer
        self.on_write = on_write
        self.reading = True

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))
        if self.on_write is not None:
            self.on_write(data)

    def get_extra_info(self, name: str):
        return (self.peer, 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close


def site(loop: asyncio.AbstractEventLoop) -> tuple[HttpListener, ConnPool]:
    """(listener, the server's connection pool: empty until the test adds upstream connections)."""
    server = Server(name="s1", host="127.0.0.1", port=9)
    holder = {}

    def make_upstream(s):
        holder["cp"] = ConnPool(s, loop, max_idle=8, idle_timeout=60, connect_timeout=1, timeout=30)
        return holder["cp"]

    pool = PoolRuntime(
        "app",
        "round_robin",
        BalancerOptions(),
        [server],
        make_upstream=make_upstream,
        rng=random.Random(1),
        clock=loop.time,
        timeout=30.0,
    )
    listener = HttpListener("web", "127.0.0.1", 0, Router(pool), loop=loop, keepalive_timeout=60, request_timeout=30)
    return listener, holder["cp"]


def use_filters(listener: HttpListener, *filters, routes=None) -> None:
    """Serve ``listener`` with filter instances (``(name, instance)`` pairs) as a configuration
    would: the listener's, and ``routes`` ({Route: [(name, instance)]}) for its routes."""
    from steelyard.proxy.http.chains import Entry, ListenerFilters

    router = listener.router
    pools = {p.name: p for p in (router.default, *(r.target for r in router.routes))}
    own = {route: [Entry(n, f) for n, f in fs] for route, fs in (routes or {}).items()}
    entries = [Entry(n, f) for n, f in filters]
    if not entries and not own:
        listener.use_filters(None)
        return
    listener.use_filters(ListenerFilters(listener.name, entries, own, router, pools, listener.loop, 30.0))
