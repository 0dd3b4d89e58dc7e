import random
from collections import Counter
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.consistent_hash import ConsistentHash

KEYS = [f"/item/{i}" for i in range(2000)]


def test_hashes_the_key_and_falls_back_to_the_client_ip(make_servers, build):
    ch = build(ConsistentHash, make_servers(1, 1, 1, 1, 1))
    by_key = {k: ch.pick(PickContext("10.0.0.1", k)) for k in KEYS[:300]}
    assert len(set(by_key.values())) == 5  # the client address played no part
    for k, s in by_key.items():
        assert ch.pick(PickContext("10.9.9.9", k)) is s
    for ip in ("10.0.0.1", "10.0.0.2", "192.168.1.7"):
        home = ch.pick(PickContext(ip, None))
        assert ch.pick(PickContext(ip, "")) is home
        assert ch.pick(PickContext(ip, ip)) is home


def test_same_servers_rebuilt_in_any_order_map_keys_identically(make_servers, build):
    servers = make_servers(1, 2, 3, 1)
    first = build(ConsistentHash, servers)
    rebuilt = build(ConsistentHash, make_servers(1, 2, 3, 1)[::-1])  # new objects, same names
    for k in KEYS:
        assert first.pick(PickContext("", k)).name == rebuilt.pick(PickContext("", k)).name


def test_weights_shift_shares(make_servers, build):
    ch = build(ConsistentHash, make_servers(3, 1))
    shares = Counter(ch.pick(PickContext("", k)).name for k in KEYS)
    assert abs(shares["a"] / len(KEYS) - 0.75) < 0.04
    assert build(ConsistentHash, make_servers(0, 1)).pick(PickContext("", "x")).name == "b"


def test_exclude_moves_a_key_to_its_own_next_server(make_servers, build):
    servers = make_servers(1, 1, 1, 1)
    ch = build(ConsistentHash, servers)
    moved = Counter()
    for k in KEYS:
        ctx = PickContext("", k)
        home = ch.pick(ctx)
        nxt = ch.pick(ctx, {home})
        assert nxt is not home and ch.pick(ctx, {home}) is nxt
        moved[nxt.name] += 1
        assert ch.pick(ctx, set(servers) - {home}) is home
        assert ch.pick(ctx, set(servers)) is None
    assert min(moved.values()) > 0.15 * len(KEYS)


def test_empty_pool(build):
    assert build(ConsistentHash, []).pick(PickContext("10.0.0.1", "k")) is None
    assert build(ConsistentHash, [], hash_balance_factor=1.5).pick(PickContext("10.0.0.1", "k")) is None


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_balance_factor_must_exceed_one(make_servers, build, factor):
    with pytest.raises(ValueError, match="hash_balance_factor"):
        build(ConsistentHash, make_servers(1, 1), hash_balance_factor=factor)


def test_hot_key_without_bound_piles_onto_one_server(make_servers, build):
    ch = build(ConsistentHash, make_servers(1, 1, 1, 1))
    assert len({ch.pick(PickContext("", "hot")) for _ in range(50)}) == 1


def cap(factor, in_flight, server, servers):
    return ceil(factor * in_flight * server.weight / sum(s.weight for s in servers))


@pytest.mark.parametrize("weights", [(1, 1, 1, 1), (3, 1, 2, 1, 1)])
def test_hot_key_loads_stay_within_the_bound(make_servers, build, weights):
    servers = make_servers(*weights)
    ch = build(ConsistentHash, servers, hash_balance_factor=1.25)
    home = ch.pick(PickContext("", "hot"))
    for in_flight in range(1, 201):
        s = ch.pick(PickContext("", "hot"))
        s.load.active += 1
        for t in servers:
            assert t.load.active <= cap(1.25, in_flight, t, servers)
    assert sum(1 for s in servers if s.load.active) >= 2  # the hot key spilled over...
    assert home.load.active >= cap(1.25, 200, home, servers) - 1  # ...after filling its home


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.floats(1.05, 3.0))
def test_bound_holds_at_every_pick_under_churn(make_servers, build, seed, factor):
    servers = make_servers(2, 1, 1, 3, 1)
    ch = build(ConsistentHash, servers, hash_balance_factor=factor)
    rnd = random.Random(seed)
    busy = []
    for _ in range(300):
        if busy and rnd.random() < 0.4:
            busy.pop(rnd.randrange(len(busy))).load.active -= 1
            continue
        in_flight = sum(s.load.active for s in servers)
        s = ch.pick(PickContext("", rnd.choice(("hot", "hot", "hot", "warm", "x" + str(rnd.random())))))
        assert s.load.active + 1 <= cap(factor, in_flight + 1, s, servers)
        s.load.active += 1
        busy.append(s)


def test_bound_gives_way_to_exclude_rather_than_failing(make_servers, build):
    servers = make_servers(1, 1, 1)
    ch = build(ConsistentHash, servers, hash_balance_factor=1.25)
    servers[2].load.active = 10  # the only server not excluded is far over its bound
    assert ch.pick(PickContext("", "k"), servers[:2]) is servers[2]


def _homes(balancer, keys):
    return {k: balancer.pick(PickContext("", k)) for k in keys}


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.data())
def test_narrowing_moves_only_the_keys_of_the_servers_left_out(make_servers, build, n, data):
    servers = make_servers(*data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    full = build(ConsistentHash, servers)
    gone = data.draw(st.sets(st.sampled_from(servers), min_size=1, max_size=n - 1))
    narrowed = full.narrowed([s for s in servers if s not in gone])
    assert narrowed is not None and narrowed._table.slots is full._table.slots  # no rebuild
    before, after = _homes(full, KEYS[:500]), _homes(narrowed, KEYS[:500])
    for k in KEYS[:500]:
        if before[k] in gone:
            assert after[k] not in gone
            assert after[k] is full.pick(PickContext("", k), gone)  # the key's own next server
        else:
            assert after[k] is before[k]
    back = narrowed.narrowed(servers)  # the servers come back: the original mapping again
    assert _homes(back, KEYS[:500]) == before


def test_narrowing_to_servers_the_table_lacks_needs_a_build_unless_partial(make_servers, build):
    servers = make_servers(1, 1, 1)
    full = build(ConsistentHash, servers[:2])
    assert full.narrowed(servers) is None
    reweighted = make_servers(2, 1)  # same names, new objects of another weight
    assert full.narrowed(reweighted) is None
    partial = full.narrowed(servers, partial=True)
    assert set(partial.servers) == set(servers[:2])
    assert {partial.pick(PickContext("", k)) for k in KEYS[:200]} == set(servers[:2])
    assert full.narrowed(make_servers(1, 1, 1, names="xyz"), partial=True) is None


def test_a_narrowed_table_honours_exclude_and_the_balance_factor(make_servers, build):
    servers = make_servers(1, 1, 1, 1)
    narrowed = build(ConsistentHash, servers, hash_balance_factor=1.25).narrowed(servers[1:])
    assert {narrowed.pick(PickContext("", k), {servers[1]}) for k in KEYS[:300]} == set(servers[2:])
    hot = PickContext("", "/hot")
    held = []
    for _ in range(30):
        s = narrowed.pick(hot)
        assert s is not servers[0]
        s.load.active += 1
        held.append(s)
    assert max(s.load.active for s in servers[1:]) <= ceil(1.25 * 30 / 3)
