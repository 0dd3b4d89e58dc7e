from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.weighted_round_robin import WeightedRoundRobin

CTX = PickContext("10.0.0.1")


def test_nginx_example_sequence_repeats(make_servers, build):
    wrr = build(WeightedRoundRobin, make_servers(5, 1, 1))
    picks = "".join(wrr.pick(CTX).name for _ in range(700))
    assert picks == "aabacaa" * 100
    assert Counter(picks) == {"a": 500, "b": 100, "c": 100}


def test_two_servers_interleave_smoothly(make_servers, build):
    wrr = build(WeightedRoundRobin, make_servers(2, 1))
    assert "".join(wrr.pick(CTX).name for _ in range(6)) == "abaaba"


@given(st.lists(st.integers(0, 12), min_size=1, max_size=8).filter(any), st.integers(1, 3))
def test_each_cycle_gives_shares_exactly_equal_to_weights(make_servers, build, weights, cycles):
    wrr = build(WeightedRoundRobin, make_servers(*weights))
    total = sum(weights)
    for _ in range(cycles):
        counts = Counter(wrr.pick(CTX).name for _ in range(total))
        assert counts == {s.name: s.weight for s in wrr.servers if s.weight}


@given(st.lists(st.integers(1, 12), min_size=2, max_size=6), st.integers(1, 100))
def test_no_server_ever_gets_a_full_pick_ahead_of_its_share(make_servers, build, weights, picks):
    # smoothness: after k picks, count_i < k·w_i/Σw + 1 (current_i = k·w_i - count_i·Σw > -Σw)
    servers = make_servers(*weights)
    wrr = build(WeightedRoundRobin, servers)
    total = sum(weights)
    counts = Counter()
    for k in range(1, picks + 1):
        counts[wrr.pick(CTX)] += 1
        assert all(counts[s] * total < k * s.weight + total for s in servers)


def test_weight_zero_never_picked_and_all_zero_is_none(make_servers, build):
    wrr = build(WeightedRoundRobin, make_servers(0, 3, 0))
    assert {wrr.pick(CTX).name for _ in range(10)} == {"b"}
    assert build(WeightedRoundRobin, make_servers(0, 0)).pick(CTX) is None
    assert build(WeightedRoundRobin, []).pick(CTX) is None


def test_exclude_is_honoured_and_the_rest_keep_their_ratio(make_servers, build):
    servers = make_servers(5, 2, 1)
    wrr = build(WeightedRoundRobin, servers)
    picks = Counter(wrr.pick(CTX, {servers[0]}).name for _ in range(300))
    assert picks == {"b": 200, "c": 100}
    assert wrr.pick(CTX, set(servers)) is None
