"""steelyard.proxy.pool.PoolRuntime: max_conns and its queue, the retry budget, slow start publishing."""

import random

from steelyard.core.balancing import BalancerOptions, PickContext
from steelyard.core.model import Server
from steelyard.core.slow_start import SlowStart
from steelyard.proxy.http.exchange import Exchange
from steelyard.proxy.pool import FULL, MIN_RETRIES, PoolRuntime


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Up:
    def __init__(self, server):
        self.server = server

    def close(self):
        pass

    def sweep(self, now):
        pass


class Down:
    """What waits in the queue (a ``lease.Waiter``), as a client connection's request does."""

    def __init__(self):
        self.gone = False
        self.ctx = PickContext("10.0.0.1")
        self.sent = []
        self.refused = 0

    def waiting(self):
        return not self.gone

    def try_again(self, pool):
        server = pool.pick(self.ctx, Exchange(0.0))
        if server is FULL:
            return False
        self.sent.append(server.name if server is not None else None)
        if server is not None:
            server.load.active += 1
        return True

    def gave_up(self):
        self.refused += 1


def make(names, max_conns=0, algorithm="round_robin", **kw):
    clock = Clock()
    srv = [Server(n, "127.0.0.1", 9000 + i, max_conns=max_conns) for i, n in enumerate(names)]
    pool = PoolRuntime(
        "app",
        algorithm,
        BalancerOptions(),
        srv,
        make_upstream=Up,
        rng=random.Random(3),
        clock=clock,
        timeout=30.0,
        **kw,
    )
    return pool, srv, clock


def test_full_servers_are_skipped_and_full_is_said_only_when_every_one_is():
    pool, (a, b), _ = make("ab", max_conns=2)
    ctx, ex = PickContext(), Exchange(0.0)
    a.load.active = 2
    assert [pool.pick(ctx, ex).name for _ in range(4)] == ["b"] * 4
    b.load.active = 2
    assert pool.pick(ctx, ex) is FULL
    assert pool.pick(ctx, ex, exclude=(a, b)) is None  # nothing left at all: not "full"
    a.load.active = 1
    assert pool.pick(ctx, ex) is a


def test_no_limit_means_no_check():
    pool, (a,), _ = make("a")
    a.load.active = 10_000
    assert pool.limited is False and pool.pick(PickContext(), Exchange(0.0)) is a


def test_the_queue_is_bounded_fifo_and_woken_when_room_appears():
    pool, (a,), clock = make("a", max_conns=1, max_queue=2, queue_timeout=5.0)
    a.load.active = 1
    d1, d2, d3 = Down(), Down(), Down()
    assert pool.enqueue(d1) and pool.enqueue(d2)
    assert not pool.enqueue(d3)  # beyond max_queue
    pool.wake()
    assert d1.sent == [] and len(pool.waiting) == 2  # still full
    a.load.active = 0
    pool.wake()
    assert (d1.sent, d2.sent) == (["a"], [])  # first come, first served; then full again
    a.load.active = 0
    d2.gone = True  # that client went away meanwhile
    pool.wake()
    assert d2.sent == [] and not pool.waiting


def test_waiting_too_long_is_answered_busy():
    pool, (a,), clock = make("a", max_conns=1, max_queue=5, queue_timeout=2.0)
    a.load.active = 1
    early, late = Down(), Down()
    pool.enqueue(early)
    clock.now += 1.5
    pool.enqueue(late)
    pool.sweep(clock.now + 0.6)
    assert (early.refused, late.refused) == (1, 0) and len(pool.waiting) == 1


def test_publishing_new_servers_wakes_the_queue():
    pool, (a,), _ = make("a", max_conns=1, max_queue=5)
    a.load.active = 1
    d = Down()
    pool.enqueue(d)
    b = Server("b", "127.0.0.1", 9100, max_conns=1)
    pool.publish([a, b])
    assert d.sent == ["b"]


def test_the_retry_budget_follows_last_seconds_completions():
    pool, (a, b), clock = make("ab", retry_budget=0.2)
    assert sum(pool.retry_allowed() for _ in range(50)) == MIN_RETRIES  # nothing completed yet: the floor
    a.load.requests, b.load.requests = 300, 200
    clock.now += 1.0
    pool.sweep(clock.now)
    assert sum(pool.retry_allowed() for _ in range(500)) == 100  # 20% of 500
    pool.publish([a])  # b leaves the pool: its completions still count, no negative window
    a.load.requests += 100
    clock.now += 1.0
    pool.sweep(clock.now)
    assert sum(pool.retry_allowed() for _ in range(500)) == 20  # 20% of the 100 completed in that second
    clock.now += 1.0
    pool.sweep(clock.now)
    assert sum(pool.retry_allowed() for _ in range(500)) == MIN_RETRIES  # a quiet second: the floor


def test_publish_with_ramping_servers_wraps_the_balancer_and_without_unwraps_it():
    pool, (a, b), clock = make("ab")
    pool.publish([a, b], {b: clock.now}, 30.0, 0.1)
    assert isinstance(pool.snapshot.balancer, SlowStart) and pool.snapshot.balancer.inner is pool.inner
    pool.publish([a, b])
    assert pool.snapshot.balancer is pool.inner
