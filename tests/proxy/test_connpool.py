"""steelyard.proxy.http.connpool.ConnPool: the idle list (LIFO, capped, swept) and closing."""

from steelyard.core.model import Server
from steelyard.proxy.http.connpool import ConnPool


class FakeLoop:
    def __init__(self, now=100.0):
        self.now = now

    def time(self):
        return self.now


class FakeConn:
    """The attributes of ``UpstreamConnection`` the pool uses."""

    def __init__(self, name):
        self.name = name
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.close_calls = 0

    def close(self):
        self.close_calls += 1
        self.closed = True

    def __repr__(self):
        return f"FakeConn({self.name})"


def make_pool(max_idle=4, idle_timeout=10.0):
    loop = FakeLoop()
    pool = ConnPool(
        Server("s", "127.0.0.1", 1), loop,  # type: ignore[arg-type]
        max_idle=max_idle, idle_timeout=idle_timeout, connect_timeout=1.0, timeout=5.0,
    )  # fmt: skip
    return pool, loop


def test_acquire_is_lifo_and_marks_reuse():
    pool, _ = make_pool()
    assert pool.acquire() is None
    a, b, c = FakeConn("a"), FakeConn("b"), FakeConn("c")
    for conn in (a, b, c):
        pool.release(conn)
    assert [pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()] == [c, b, a, None]
    assert a.reused and b.reused and c.reused
    assert not any(x.close_calls for x in (a, b, c))


def test_acquire_skips_connections_that_closed_while_idle():
    pool, _ = make_pool()
    a, b = FakeConn("a"), FakeConn("b")
    pool.release(a)
    pool.release(b)
    b.closed = True  # the server closed it
    assert pool.acquire() is a
    assert pool.acquire() is None
    assert not b.reused


def test_release_caps_the_idle_list_at_max_idle():
    pool, _ = make_pool(max_idle=2)
    conns = [FakeConn(str(i)) for i in range(4)]
    for conn in conns:
        pool.release(conn)
    assert list(pool.idle) == conns[:2]
    assert [c.close_calls for c in conns] == [0, 0, 1, 1]


def test_max_idle_zero_keeps_nothing():
    pool, _ = make_pool(max_idle=0)
    conn = FakeConn("a")
    pool.release(conn)
    assert conn.closed and not pool.idle


def test_release_stamps_idle_since_and_sweep_closes_by_idle_timeout():
    pool, loop = make_pool(idle_timeout=10.0)
    old, mid, new = FakeConn("old"), FakeConn("mid"), FakeConn("new")
    for conn, t in ((old, 100.0), (mid, 105.0), (new, 109.0)):
        loop.now = t
        pool.release(conn)
        assert conn.idle_since == t
    pool.sweep(110.0)  # nothing idle for more than 10 s
    assert list(pool.idle) == [old, mid, new]
    pool.sweep(115.5)
    assert list(pool.idle) == [new]
    assert (old.close_calls, mid.close_calls, new.close_calls) == (1, 1, 0)
    assert pool.acquire() is new


def test_forget_removes_an_idle_connection():
    pool, _ = make_pool()
    a, b = FakeConn("a"), FakeConn("b")
    pool.release(a)
    pool.release(b)
    pool.forget(a)
    pool.forget(FakeConn("never-idle"))
    assert list(pool.idle) == [b]
    assert not a.close_calls


def test_close_closes_idle_ones_and_later_releases():
    pool, _ = make_pool()
    idle, busy = FakeConn("idle"), FakeConn("busy")
    pool.release(idle)
    pool.close()
    assert pool.closed and idle.close_calls == 1 and not pool.idle
    assert pool.acquire() is None
    pool.release(busy)  # its exchange ended after the server left the pool
    assert busy.close_calls == 1 and not pool.idle


class FakeTransport:
    def __init__(self, closing):
        self.closing = closing

    def is_closing(self):
        return self.closing


class FakeDown:
    """Records how ``connect_for`` hands over its outcome."""

    def __init__(self):
        self.current = None
        self.calls = []

    def attach(self, conn, ex):
        self.calls.append(("attach", conn.name))

    def exchange_failed(self, ex, status, responded, retry=0):
        self.calls.append(("failed", status, responded, retry))


async def test_a_connection_closed_before_its_callback_ran_counts_as_a_connect_failure(monkeypatch):
    """A server that accepts and dies at once: the new connection is closed by the time the
    connect callback runs; writing the request to it would strand the exchange."""
    import asyncio

    from steelyard.proxy.http.dispatch import UNSENT

    loop = asyncio.get_running_loop()
    pool = ConnPool(Server("s", "127.0.0.1", 1), loop, max_idle=4, idle_timeout=10.0, connect_timeout=1.0, timeout=5.0)
    outcomes = []
    for closing, closed in ((False, False), (True, False), (False, True)):
        conn = FakeConn("c")
        conn.closed, conn.transport = closed, FakeTransport(closing)

        async def connect(self, conn=conn):
            return conn

        monkeypatch.setattr(ConnPool, "connect", connect)
        down, ex = FakeDown(), object()
        down.current = ex
        pool.connect_for(ex, down)
        for _ in range(3):
            await asyncio.sleep(0)
        outcomes.append(down.calls)
    assert outcomes == [[("attach", "c")], [("failed", 502, False, UNSENT)], [("failed", 502, False, UNSENT)]]
