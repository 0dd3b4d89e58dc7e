import random

from steelyard.core.balancing import BalancerOptions
from steelyard.core.balancing.least_conn import LeastConn
from steelyard.core.balancing.least_time import LeastTime
from steelyard.sim.nodes import make_nodes


def nodes(count, shared, own=True, cls=LeastConn):
    return make_nodes(
        cls,
        ["a", "b", "c"],
        [1, 1, 1],
        count=count,
        shared=shared,
        own=own,
        seed=1,
        clock=lambda: 0.0,
        options=BalancerOptions(),
    )


def test_current_information_shares_one_set_of_servers():
    a, b = nodes(2, shared=True)
    assert a.servers == b.servers and all(x is y for x, y in zip(a.servers, b.servers))
    assert a.bump and not a.track
    assert a.balancer is not b.balancer and a.balancer.rng is not b.balancer.rng


def test_stale_views_are_snapshot_plus_own_changes_since():
    a, b = nodes(2, shared=False)
    assert not any(x is y for x, y in zip(a.servers, b.servers))
    a.own_inflight[:] = [2, 0, 1]
    snapshot, own_then = (5, 1, 1), [2, 0, 1]  # a's 2 at "a" and 1 at "c" are in the snapshot
    a.own_inflight[:] = [3, 0, 0]  # since: one more to "a", the one at "c" ended
    a.apply(snapshot, own_then)
    assert [s.load.active for s in a.servers] == [6, 1, 0]


def test_a_bulletin_board_shows_only_the_snapshot():
    (a,) = nodes(1, shared=False, own=False)
    assert not a.bump and not a.track
    a.apply((4, 0, 2), None)
    assert [s.load.active for s in a.servers] == [4, 0, 2]


def test_publish_rebuilds_over_healthy_servers_and_keeps_load():
    (a,) = nodes(1, shared=True, cls=LeastTime)
    a.servers[0].load.ewma = 0.5
    a.publish([False, True, True])
    assert a.balancer.servers == a.servers[1:] and a.learns
    a.publish([True, True, True])
    assert a.servers[0].load.ewma == 0.5
    assert {a.balancer.pick(None).name for _ in range(3)} <= {"a", "b", "c"}
    assert isinstance(a.balancer.rng, random.Random)
