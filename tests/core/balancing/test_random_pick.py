from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.random_pick import RandomPick

CTX = PickContext("10.0.0.1")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=6).filter(any), st.integers(0, 2**32))
def test_shares_follow_weights(make_servers, build, weights, seed):
    rp = build(RandomPick, make_servers(*weights), seed=seed)
    picks = Counter(rp.pick(CTX).name for _ in range(20000))
    total = sum(weights)
    for s in rp.servers:
        assert abs(picks[s.name] / 20000 - s.weight / total) < 0.02


def test_same_seed_same_sequence(make_servers, build):
    def seq(seed):
        rp = build(RandomPick, make_servers(3, 1, 2), seed=seed)
        return [rp.pick(CTX).name for _ in range(50)]

    assert seq(7) == seq(7)
    assert seq(7) != seq(8)


def test_exclude_weight_zero_and_empty(make_servers, build):
    servers = make_servers(5, 1, 0, 1)
    rp = build(RandomPick, servers)
    picks = Counter(rp.pick(CTX, {servers[0]}).name for _ in range(2000))
    assert set(picks) == {"b", "d"} and 900 < picks["b"] < 1100
    assert rp.pick(CTX, {servers[0], servers[1], servers[3]}) is None
    assert build(RandomPick, []).pick(CTX) is None
