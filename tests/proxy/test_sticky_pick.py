"""steelyard.proxy.sticky: the sticky pick on a PoolRuntime with fake upstreams and a fake clock."""

from __future__ import annotations

import random

from steelyard.config.sticky import StickyConfig
from steelyard.core.balancing import BalancerOptions, PickContext
from steelyard.core.model import Server
from steelyard.proxy.pool import FULL, PoolRuntime
from steelyard.proxy.sticky import Sticky, _take_cookie

SECRET = "0123456789abcdef0123456789abcdef"


class Up:
    def close(self) -> None:
        pass


class Ex:
    def __init__(self, cookie: bytes | None = None) -> None:
        self.parts = [b"Host", b": ", b"x", b"\r\n"]
        if cookie is not None:
            self.parts += [b"Cookie", b": ", cookie, b"\r\n"]
        self.set_cookie = None
        self.sticky = None

    def hash_key(self, kind, name):
        return None


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(servers, **cfg):
    clock = Clock()
    pool = PoolRuntime(
        "app",
        "round_robin",
        BalancerOptions(),
        servers,
        make_upstream=lambda s: Up(),
        rng=random.Random(1),
        clock=clock,
        timeout=5.0,
    )
    pool.sticky = Sticky(StickyConfig(**cfg), clock=clock, wall=clock, full=FULL)
    return pool, clock


def cookie_of(ex: Ex) -> bytes:
    line = ex.set_cookie.decode()
    assert line.startswith("Set-Cookie: SYID=") and "HttpOnly" in line and "SameSite=Lax" in line
    return line.split("=", 1)[1].split(";")[0].encode()


def test_take_cookie_strips_only_the_sticky_one() -> None:
    ex = Ex(b"a=1; SYID=xyz; b=2")
    ex.parts += [b"cookie", b": ", b"SYID=last", b"\r\n"]
    assert _take_cookie(ex, b"SYID") == b"last"
    assert ex.parts == [b"Host", b": ", b"x", b"\r\n", b"Cookie", b": ", b"a=1; b=2", b"\r\n"]
    ex = Ex(b"SYIDX=1; other=SYID=2")
    assert _take_cookie(ex, b"SYID") is None and ex.parts[6] == b"SYIDX=1; other=SYID=2"


def test_cookie_keeps_the_client_and_redispatches_when_the_server_goes() -> None:
    a, b, c = Server("a", "h", 1), Server("b", "h", 2), Server("c", "h", 3)
    pool, clock = make([a, b, c], mode="cookie", secret=SECRET)
    ctx = PickContext("10.0.0.1")
    first = Ex()
    server = pool.pick(ctx, first)
    value = cookie_of(first)
    for _ in range(20):
        ex = Ex(b"SYID=" + value)
        assert pool.pick(ctx, ex) is server and ex.set_cookie is None
    forged = Ex(b"SYID=" + value[:-2] + (b"AA" if value[-2:] != b"AA" else b"BA"))
    assert pool.pick(ctx, forged) is not None and forged.set_cookie is not None
    # the server leaves the usable set: the client moves and gets a new cookie
    pool.publish([s for s in (a, b, c) if s is not server])
    ex = Ex(b"SYID=" + value)
    moved = pool.pick(ctx, ex)
    assert moved is not server and moved is not None
    assert pool.sticky.codec.decode(cookie_of(ex))[0] == pool.sticky.codec.server_id(moved.name)
    # a retry excludes the failed sticky server
    ex = Ex(b"SYID=" + cookie_of(ex))
    assert pool.pick(ctx, ex, (moved,)) not in (moved, None)


def test_persist_answers_503_or_waits_instead_of_moving() -> None:
    a, b = Server("a", "h", 1, max_conns=1), Server("b", "h", 2, max_conns=1)
    pool, clock = make([a, b], mode="cookie", secret=SECRET, persist=True)
    ctx = PickContext("10.0.0.1")
    ex = Ex()
    server = pool.pick(ctx, ex)
    value = cookie_of(ex)
    server.load.active = 1
    assert pool.pick(ctx, Ex(b"SYID=" + value)) is FULL
    server.load.active = 0
    pool.publish([s for s in (a, b) if s is not server])
    assert pool.pick(ctx, Ex(b"SYID=" + value)) is None


def test_full_sticky_server_redispatches_without_persist() -> None:
    a, b = Server("a", "h", 1, max_conns=1), Server("b", "h", 2, max_conns=1)
    pool, clock = make([a, b], mode="cookie", secret=SECRET)
    ex = Ex()
    server = pool.pick(PickContext(""), ex)
    server.load.active = 1
    ex2 = Ex(b"SYID=" + cookie_of(ex))
    assert pool.pick(PickContext(""), ex2) not in (server, None) and ex2.set_cookie is not None


def test_draining_server_keeps_its_clients_for_the_grace() -> None:
    a, b = Server("a", "h", 1), Server("b", "h", 2)
    pool, clock = make([a, b], mode="cookie", secret=SECRET, drain_grace="30s")
    ex = Ex()
    server = pool.pick(PickContext(""), ex)
    value = cookie_of(ex)
    other = b if server is a else a
    pool.publish([other], draining={server.name: (server, clock.t)})
    assert server in pool.upstreams  # its connections stay for the sticky clients
    assert pool.pick(PickContext(""), Ex(b"SYID=" + value)) is server
    assert all(pool.pick(PickContext(""), Ex()) is other for _ in range(5))  # no new client gets it
    clock.t += 31
    assert pool.pick(PickContext(""), Ex(b"SYID=" + value)) is other


def test_source_mode_sticks_per_address() -> None:
    servers = [Server(n, "h", i) for i, n in enumerate("abc")]
    pool, clock = make(servers, mode="source", table_size=2, expire="60s")
    got = {ip: pool.pick(PickContext(ip), Ex()) for ip in ("1", "2")}
    for _ in range(10):
        for ip, s in got.items():
            assert pool.pick(PickContext(ip), Ex()) is s
    assert len(pool.sticky.table) == 2
    pool.pick(PickContext("3"), Ex())
    assert len(pool.sticky.table) == 2
