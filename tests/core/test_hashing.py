from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.hashing import (
    MAGLEV_PRIMES,
    Maglev,
    hash64,
    maglev_populate,
    maglev_size,
)

NAMES = [f"10.0.0.{i}:80" for i in range(1, 40)]
KEYS = [f"client-{i}" for i in range(2000)]


def test_hash64_is_pinned_and_64_bit():
    # pinned values: a change here would remap every hashed key in a running cluster
    assert hash64("") == 13020603013274838756
    assert hash64("10.0.0.1") == 16574176683607101011
    assert all(0 <= hash64(k) < 2**64 for k in KEYS)
    assert len({hash64(k) for k in KEYS}) == len(KEYS)


def test_table_sizes_are_primes_with_100_slots_per_item():
    assert maglev_size(1) == maglev_size(50) == 5003
    assert maglev_size(51) == 65537
    for n in (1, 7, 50, 51, 655, 656, 6553, 10000):
        assert maglev_size(n) >= min(100 * n, MAGLEV_PRIMES[-1])
        assert maglev_size(n) in MAGLEV_PRIMES
    with pytest.raises(ValueError):
        maglev_size(MAGLEV_PRIMES[-1] + 1)
    for p in MAGLEV_PRIMES:
        assert all(p % d for d in range(2, int(p**0.5) + 1))


def test_empty_and_too_small_tables():
    assert maglev_populate([], [], 5003) == []
    assert maglev_populate(["a", "b"], [0, 0], 5003) == []
    assert Maglev([], [], []).lookup(123) is None
    with pytest.raises(ValueError):
        maglev_populate(["a", "b", "c"], [1, 1, 1], 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=12).filter(any))
def test_slot_shares_follow_weights(weights):
    names = NAMES[: len(weights)]
    table = maglev_populate(names, weights, 5003)
    counts = Counter(table)
    assert len(table) == 5003 and sum(counts.values()) == 5003
    total = sum(weights)
    for i, w in enumerate(weights):
        if w == 0:
            assert counts[i] == 0
        else:
            assert counts[i] >= 1
            assert abs(counts[i] / 5003 - w / total) <= 0.01


def test_every_positive_weight_owns_a_slot_even_when_tiny():
    counts = Counter(maglev_populate(["a", "b", "c"], [1000, 1000, 1], 5003))
    assert counts[2] >= 1


@given(st.permutations(range(8)))
def test_table_does_not_depend_on_item_order(order):
    names = NAMES[:8]
    weights = [1, 2, 3, 1, 2, 3, 1, 2]
    base = [names[i] for i in maglev_populate(names, weights, 5003)]
    shuffled_names = [names[i] for i in order]
    shuffled_weights = [weights[i] for i in order]
    again = [shuffled_names[i] for i in maglev_populate(shuffled_names, shuffled_weights, 5003)]
    assert again == base


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.data())
def test_removing_one_of_n_remaps_about_one_nth(n, data):
    gone = data.draw(st.integers(0, n - 1))
    names = NAMES[:n]
    before = Maglev(names, names, [1] * n)
    rest = names[:gone] + names[gone + 1 :]
    after = Maglev(rest, rest, [1] * (n - 1))
    hashes = [hash64(k) for k in KEYS]
    moved = [h for h in hashes if before.lookup(h) != after.lookup(h)]
    assert all(after.lookup(h) != names[gone] for h in hashes)
    owned = [h for h in hashes if before.lookup(h) == names[gone]]
    assert set(owned) <= set(moved)  # those had to move...
    assert len(moved) <= (1 / n + 0.1) * len(KEYS)  # ...and few others did


def test_first_probes_following_slots_and_is_deterministic():
    names = NAMES[:5]
    table = Maglev(names, names, [1] * 5)
    for h in map(hash64, KEYS[:200]):
        home = table.lookup(h)
        assert table.first(h, lambda s: True) == home
        not_home = home.__ne__
        nxt = table.first(h, not_home)
        assert nxt != home and nxt == table.first(h, not_home)
        i = h % table.size
        while table.slots[i] == home:
            i = (i + 1) % table.size
        assert nxt == table.slots[i]
    assert table.first(1, lambda s: False) is None


def test_next_server_of_a_removed_home_spreads_over_the_others():
    names = NAMES[:5]
    table = Maglev(names, names, [1] * 5)
    fallbacks = Counter(table.first(hash64(k), lambda s: s != names[0]) for k in KEYS)
    assert set(fallbacks) == set(names[1:])
    assert min(fallbacks.values()) > 0.15 * len(KEYS)
