from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.p2c import PowerOfTwoChoices

CTX = PickContext("10.0.0.1")


class ScriptedRng:
    """Returns the given floats from random(), in turn."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def test_with_two_servers_the_idle_one_always_wins(make_servers, build):
    servers = make_servers(1, 1)
    p2c = build(PowerOfTwoChoices, servers)
    servers[0].load.active = 3
    assert {p2c.pick(CTX).name for _ in range(200)} == {"b"}


def test_the_less_loaded_candidate_wins_and_a_tie_keeps_the_first(make_servers, build):
    servers = make_servers(1, 1, 1)
    p2c = build(PowerOfTwoChoices, servers)
    servers[0].load.active = 2
    servers[2].load.active = 1
    p2c.rng = ScriptedRng(0.1, 0.9)  # draws a, then c (of the b..c line)
    assert p2c.pick(CTX) is servers[2]
    p2c.rng = ScriptedRng(0.9, 0.1)  # draws c, then a
    assert p2c.pick(CTX) is servers[2]
    servers[2].load.active = 2
    p2c.rng = ScriptedRng(0.9, 0.1)  # c and a tie at 2: the first draw stays
    assert p2c.pick(CTX) is servers[2]


def test_candidates_are_distinct_even_for_identical_draws(make_servers, build):
    servers = make_servers(1, 1)
    servers[1].load.active = 1
    p2c = build(PowerOfTwoChoices, servers)
    p2c.rng = ScriptedRng(0.0, 0.0)  # a naive second draw would return a again
    servers[0].load.active = 5
    assert p2c.pick(CTX) is servers[1]


def test_load_is_compared_per_unit_of_weight(make_servers, build):
    servers = make_servers(4, 1)
    p2c = build(PowerOfTwoChoices, servers)
    servers[0].load.active = 3  # 3/4 < 1/1
    servers[1].load.active = 1
    assert {p2c.pick(CTX).name for _ in range(100)} == {"a"}


def test_idle_pool_shares_follow_weights(make_servers, build):
    p2c = build(PowerOfTwoChoices, make_servers(3, 1), seed=1)
    picks = Counter(p2c.pick(CTX).name for _ in range(20000))
    assert abs(picks["a"] / 20000 - 0.75) < 0.02


def test_held_requests_stay_balanced(make_servers, build):
    servers = make_servers(*[1] * 8)
    p2c = build(PowerOfTwoChoices, servers, seed=3)
    for _ in range(800):
        p2c.pick(CTX).load.active += 1
    assert max(s.load.active for s in servers) - min(s.load.active for s in servers) <= 3


@given(st.lists(st.integers(0, 5), min_size=1, max_size=6), st.data(), st.integers(0, 2**32))
def test_never_returns_an_excluded_server(make_servers, build, weights, data, seed):
    servers = make_servers(*weights)
    for s in servers:
        s.load.active = data.draw(st.integers(0, 4))
    exclude = set(data.draw(st.lists(st.sampled_from(servers), max_size=len(servers))))
    p2c = build(PowerOfTwoChoices, servers, seed=seed)
    rest = [s for s in servers if s not in exclude and s.weight]
    for _ in range(20):
        picked = p2c.pick(CTX, exclude)
        assert picked in rest if rest else picked is None
    if len(rest) == 1:
        assert picked is rest[0]


def test_default_options_keep_two_choices(make_servers, build):
    assert build(PowerOfTwoChoices, make_servers(1, 1))._d == 2


def test_d_choices_pick_the_least_loaded_of_d_distinct_candidates(make_servers, build):
    servers = make_servers(*[1] * 6)
    for n, s in enumerate(servers):
        s.load.active = 10 - n  # f is the least loaded
    p2c = build(PowerOfTwoChoices, servers, choices=6)
    assert {p2c.pick(CTX).name for _ in range(50)} == {"f"}  # all six are candidates every time
    p2c = build(PowerOfTwoChoices, servers, choices=3, seed=2)
    picks = Counter(p2c.pick(CTX).name for _ in range(6000))
    # f wins whenever drawn among 3 of 6 (P = 1/2); a can never win (always loses to the others)
    assert abs(picks["f"] / 6000 - 0.5) < 0.03
    assert picks["a"] == picks["b"] == 0


def test_one_choice_is_weighted_random(make_servers, build):
    servers = make_servers(3, 1)
    servers[0].load.active = 100
    p2c = build(PowerOfTwoChoices, servers, choices=1, seed=4)
    picks = Counter(p2c.pick(CTX).name for _ in range(20000))
    assert abs(picks["a"] / 20000 - 0.75) < 0.02


def test_d_choices_with_a_dominant_weight_still_draws_distinct_candidates(make_servers, build):
    servers = make_servers(1000, 1, 1)
    servers[0].load.active = 50
    servers[1].load.active = 3
    p2c = build(PowerOfTwoChoices, servers, choices=3, seed=5)
    assert {p2c.pick(CTX).name for _ in range(100)} == {"c"}  # 3 of 3: c (0 active) always a candidate


def test_choices_below_one_are_refused(make_servers, build):
    import pytest

    with pytest.raises(ValueError, match="choices"):
        build(PowerOfTwoChoices, make_servers(1, 1), choices=0)
