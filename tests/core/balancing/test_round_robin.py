from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.round_robin import RoundRobin

CTX = PickContext("10.0.0.1")


def names(balancer, count, exclude=()):
    return "".join(balancer.pick(CTX, exclude).name for _ in range(count))


def test_strict_rotation(make_servers, build):
    rr = build(RoundRobin, make_servers(1, 1, 1))
    assert names(rr, 9) == "abcabcabc"


def test_weights_are_ignored_but_zero_is_never_picked(make_servers, build):
    rr = build(RoundRobin, make_servers(5, 0, 1))
    assert names(rr, 6) == "acacac"


def test_exclude_skips_and_rotation_continues_after_the_returned_server(make_servers, build):
    servers = make_servers(1, 1, 1, 1)
    rr = build(RoundRobin, servers)
    assert names(rr, 1) == "a"
    assert rr.pick(CTX, {servers[1]}).name == "c"  # b skipped
    assert names(rr, 3) == "dab"


def test_none_when_everything_is_excluded_or_empty(make_servers, build):
    servers = make_servers(1, 1)
    assert build(RoundRobin, servers).pick(CTX, set(servers)) is None
    assert build(RoundRobin, []).pick(CTX) is None
    assert build(RoundRobin, make_servers(0, 0)).pick(CTX) is None


@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.integers(0, 20))
def test_every_window_of_n_picks_visits_each_usable_server_once(make_servers, build, weights, warmup):
    rr = build(RoundRobin, make_servers(*weights))
    usable = sorted(s.name for s in rr.servers if s.weight)
    for _ in range(warmup):
        rr.pick(CTX)
    picks = [rr.pick(CTX) for _ in range(len(usable))]
    assert sorted(p.name for p in picks if p) == usable
