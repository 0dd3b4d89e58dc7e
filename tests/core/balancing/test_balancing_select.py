import random

from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.balancing._select import TieRotor, WeightedDraw, usable


class FixedRng:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


UNIT = st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.just(1.0 - 2**-53), st.just(0.0))


def test_usable_drops_weight_zero_and_keeps_order(make_servers):
    servers = make_servers(2, 0, 1, 0)
    assert usable(servers) == (servers[0], servers[2])


def test_rotor_scans_after_the_last_winner(make_servers):
    rotor = TieRotor(tuple(make_servers(1, 1, 1)))
    assert [rotor.ring[i].name for i in rotor.order()] == ["a", "b", "c"]
    rotor.won(rotor.order()[2])
    assert [rotor.ring[i].name for i in rotor.order()] == ["a", "b", "c"]
    rotor.won(1)
    assert [rotor.ring[i].name for i in rotor.order()] == ["c", "a", "b"]
    rotor.won(4)  # ring index of b in the second copy
    assert rotor.start == 2
    assert list(TieRotor(()).order()) == []


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=10), UNIT)
def test_index_stays_in_range(make_servers, weights, u):
    draw = WeightedDraw(tuple(make_servers(*weights)))
    i = draw.index(FixedRng(u))
    assert 0 <= i < len(weights)
    lo = draw.cum[i - 1] if i else 0
    assert lo <= u * draw.total < draw.cum[i]


@given(st.lists(st.integers(1, 1000), min_size=2, max_size=10), st.data(), UNIT)
def test_other_never_returns_the_given_index(make_servers, weights, data, u):
    draw = WeightedDraw(tuple(make_servers(*weights)))
    i = data.draw(st.integers(0, len(weights) - 1))
    j = draw.other(FixedRng(u), i)
    assert 0 <= j < len(weights) and j != i


def test_other_is_weighted_among_the_rest(make_servers):
    draw = WeightedDraw(tuple(make_servers(1, 6, 3)))
    rng = random.Random(5)
    counts = [0, 0, 0]
    for _ in range(20000):
        counts[draw.other(rng, 1)] += 1
    assert counts[1] == 0
    assert abs(counts[0] / 20000 - 0.25) < 0.02


def test_without_excludes(make_servers):
    servers = make_servers(1, 2, 3)
    draw = WeightedDraw(tuple(servers)).without({servers[1]})
    assert draw.servers == (servers[0], servers[2]) and draw.cum == [1, 4] and draw.total == 4
