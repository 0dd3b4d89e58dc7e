import random

from steelyard.core.balancing import BalancerOptions
from steelyard.core.balancing.least_conn import LeastConn
from steelyard.core.balancing.least_time import LeastTime
from steelyard.sim.nodes import Request, make_nodes


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
    assert a.held is a.servers and not a.track  # requests' leases hold what the balancers see
    assert a.balancer is not b.balancer and a.balancer.rng is not b.balancer.rng


def test_stale_views_are_snapshot_plus_own_changes_since():
    a, b = nodes(2, shared=False)
    assert not any(x is y for x, y in zip(a.servers, b.servers))
    assert a.held is a.servers and a.track
    a.own_inflight[:] = [2, 0, 1]
    snapshot, own_then = (5, 1, 1), [2, 0, 1]  # a's 2 at "a" and 1 at "c" are in the snapshot
    a.own_inflight[:] = [3, 0, 0]  # since: one more to "a", the one at "c" ended
    a.apply(snapshot, own_then)
    assert [s.load.active for s in a.servers] == [6, 1, 0]


def test_a_bulletin_board_shows_only_the_snapshot():
    (a,) = nodes(1, shared=False, own=False)
    assert not a.track and not set(a.held) & set(a.servers)
    a.apply((4, 0, 2), None)
    assert [s.load.active for s in a.servers] == [4, 0, 2]


def test_publish_rebuilds_over_healthy_servers_and_keeps_load():
    (a,) = nodes(1, shared=True, cls=LeastTime)
    a.servers[0].load.ewma = 0.5
    a.publish([False, True, True])
    assert a.balancer.servers == a.servers[1:] and a.on_done is not None
    a.publish([True, True, True])
    assert a.servers[0].load.ewma == 0.5
    assert {a.balancer.pick(None).name for _ in range(3)} <= {"a", "b", "c"}
    assert isinstance(a.balancer.rng, random.Random)


def test_a_node_plays_the_pools_part_for_its_requests_leases():
    (a,) = nodes(1, shared=True)  # least_conn does not learn from completions: no hook
    assert a.on_done is None and not a.waiting and a.eject_after == a.eject_5xx == 0
    load = a.servers[1].load
    for _ in range(3):
        req = Request(2.0, True)
        req.take(a, a.held[1], 1.0)
        assert load.active == 1
        req.settle(False, 3.0)
    assert (load.active, load.failures, load.fail_streak) == (0, 3, 3)  # counted, never ejected
    req.take(a, a.held[1], 4.0)
    req.settle(True, 6.0)
    assert (load.active, load.requests, load.fail_streak) == (0, 1, 0)
    (b,) = nodes(1, shared=True, cls=LeastTime)
    b.publish([True, False, True])
    assert b.on_done == b.balancer.on_done  # the hook of the balancer now in use, as a pool's


def test_a_bulletin_boards_leases_hold_objects_its_balancer_does_not_see():
    (a,) = nodes(1, shared=False, own=False, cls=LeastTime)
    a.apply((4, 0, 2), None)
    req = Request(1.0, True)
    req.take(a, a.held[0], 10.0)
    assert [s.load.active for s in a.servers] == [4, 0, 2] and a.held[0].load.active == 1
    req.settle(True, 10.5)
    # what the balancer learns goes to the server it sees; the count stays the board's
    assert a.servers[0].load.peak == 0.5 and a.held[0].load.peak == 0.0
    assert a.servers[0].load.active == 4 and a.held[0].load.active == 0
