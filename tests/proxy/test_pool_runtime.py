"""steelyard.proxy.pool.PoolRuntime: snapshots, per-server upstreams, hash keys and the on_done hook."""

import random

import pytest

from steelyard.core.balancing import BalancerOptions, PickContext
from steelyard.core.balancing.least_time import LeastTime
from steelyard.core.model import Server
from steelyard.proxy.http.exchange import Exchange
from steelyard.proxy.pool import PoolRuntime


class FakeUpstream:
    def __init__(self, server):
        self.server = server
        self.closed = 0
        self.swept = []

    def close(self):
        self.closed += 1

    def sweep(self, now):
        self.swept.append(now)


class Factory:
    """``make_upstream`` that records every upstream it made."""

    def __init__(self):
        self.made = []

    def __call__(self, server):
        up = FakeUpstream(server)
        self.made.append(up)
        return up


def servers(*names):
    return [Server(n, "127.0.0.1", 9000 + i) for i, n in enumerate(names)]


def runtime(algorithm, srv, factory=None, **options):
    return PoolRuntime(
        "app", algorithm, BalancerOptions(**options), srv,
        make_upstream=factory or Factory(), rng=random.Random(1), clock=lambda: 100.0, timeout=30.0,
    )  # fmt: skip


def test_publish_keeps_servers_and_their_load_and_manages_upstreams():
    a, b, c = servers("a", "b", "c")
    factory = Factory()
    pool = runtime("round_robin", [a, b], factory)
    assert [up.server for up in factory.made] == [a, b]
    up_a, up_b = factory.made
    a.load.active, a.load.requests = 2, 7
    first = pool.snapshot

    pool.publish([a, c])
    assert pool.snapshot is not first and pool.snapshot.name == "app"
    assert pool.snapshot.servers == (a, c)
    assert pool.snapshot.servers[0] is first.servers[0]
    assert pool.snapshot.servers[0].load is a.load
    assert (a.load.active, a.load.requests) == (2, 7)  # survived the swap
    assert [up.server for up in factory.made] == [a, b, c]  # only the new server got one
    assert pool.upstreams == {a: up_a, c: factory.made[2]}
    assert (up_a.closed, up_b.closed) == (0, 1)  # the removed server's upstream closed once
    assert first.servers == (a, b)  # a published snapshot never changes

    pool.publish([a, c])
    assert len(factory.made) == 3 and up_b.closed == 1


def test_publish_an_empty_set_closes_everything():
    factory = Factory()
    pool = runtime("round_robin", servers("a", "b"), factory)
    pool.publish([])
    assert pool.upstreams == {}
    assert [up.closed for up in factory.made] == [1, 1]
    assert pool.pick(PickContext("10.0.0.1"), Exchange(0.0)) is None


def test_sweep_and_close_reach_every_upstream():
    factory = Factory()
    pool = runtime("round_robin", servers("a", "b"), factory)
    pool.sweep(5.0)
    assert [up.swept for up in factory.made] == [[5.0], [5.0]]
    pool.close()
    assert [up.closed for up in factory.made] == [1, 1]
    assert pool.upstreams == {}


def exchange(url=b"/p?x=1", headers=()):
    ex = Exchange(0.0)
    ex.url = url
    ex.headers = list(headers)
    return ex


@pytest.mark.parametrize(
    ("hash_on", "key"),
    [
        ("client_ip", None),
        ("uri", "/p?x=1"),
        ("header:X-User", "alice"),
        ("cookie:Sess", "abc"),
        ("cookie:sess", None),  # cookie names keep their case
        ("header:X-Missing", None),
    ],
)
def test_pick_sets_the_hash_key(hash_on, key):
    pool = runtime("round_robin", servers("a"), hash_on=hash_on)
    ctx = PickContext("10.0.0.1", key="stale")
    ex = exchange(headers=[(b"x-user", b"alice"), (b"Cookie", b"Sess=abc")])
    assert pool.pick(ctx, ex) is pool.snapshot.servers[0]
    assert ctx.key == key


def test_pick_uses_the_current_snapshot():
    a, b = servers("a", "b")
    pool = runtime("round_robin", [a])
    ctx = PickContext("10.0.0.1")
    assert pool.pick(ctx, exchange()) is a
    pool.publish([b])
    assert {pool.pick(ctx, exchange()) for _ in range(3)} == {b}


@pytest.mark.parametrize(
    "algorithm", ["round_robin", "weighted_round_robin", "ip_hash", "consistent_hash", "least_conn", "random", "p2c"]
)
def test_on_done_is_none_for_balancers_that_do_not_learn(algorithm):
    pool = runtime(algorithm, servers("a", "b"))
    assert pool.on_done is None


def test_on_done_is_the_current_least_time_balancers_hook():
    srv = servers("a", "b")
    pool = runtime("least_time", srv)
    assert isinstance(pool.snapshot.balancer, LeastTime)
    assert pool.on_done is not None and pool.on_done.__self__ is pool.snapshot.balancer
    pool.on_done(srv[0], True, 0.5)
    assert srv[0].load.peak == 0.5  # (a first sample sets the peak only: least_time)
    old = pool.snapshot.balancer
    pool.publish(srv)
    assert pool.on_done.__self__ is pool.snapshot.balancer is not old
