from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.least_conn import LeastConn

CTX = PickContext("10.0.0.1")


def set_active(servers, *active):
    for s, a in zip(servers, active):
        s.load.active = a


def test_picks_the_lowest_active_per_weight(make_servers, build):
    servers = make_servers(1, 2, 4)
    lc = build(LeastConn, servers)
    set_active(servers, 2, 3, 5)  # 2/1, 3/2, 5/4
    assert lc.pick(CTX) is servers[2]
    set_active(servers, 2, 3, 9)  # 2, 1.5, 2.25
    assert lc.pick(CTX) is servers[1]


def test_idle_ties_rotate(make_servers, build):
    lc = build(LeastConn, make_servers(1, 1, 1))
    assert "".join(lc.pick(CTX).name for _ in range(7)) == "abcabca"


def test_busy_ties_rotate_too(make_servers, build):
    servers = make_servers(1, 1, 1)
    lc = build(LeastConn, servers)
    set_active(servers, 4, 2, 2)
    assert [lc.pick(CTX).name for _ in range(4)] == ["b", "c", "b", "c"]


def test_requests_held_open_spread_evenly(make_servers, build):
    servers = make_servers(1, 1, 2)
    lc = build(LeastConn, servers)
    for _ in range(40):
        lc.pick(CTX).load.active += 1
    assert [s.load.active for s in servers] == [10, 10, 20]


def test_exclude_and_weight_zero(make_servers, build):
    servers = make_servers(1, 1, 0)
    lc = build(LeastConn, servers)
    set_active(servers, 0, 5, 0)
    assert lc.pick(CTX, {servers[0]}) is servers[1]  # busy, but the only one left
    assert lc.pick(CTX, servers[:2]) is None  # weight 0 is never picked
    assert build(LeastConn, []).pick(CTX) is None


@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 30)), min_size=1, max_size=8), st.data())
def test_result_is_a_minimum_of_active_over_weight(make_servers, build, specs, data):
    servers = make_servers(*[w for w, _ in specs])
    set_active(servers, *[a for _, a in specs])
    exclude = set(data.draw(st.lists(st.sampled_from(servers), max_size=len(servers) - 1)))
    lc = build(LeastConn, servers)
    picked = lc.pick(CTX, exclude)
    rest = [s for s in servers if s not in exclude]
    assert picked in rest
    assert all(picked.load.active * s.weight <= s.load.active * picked.weight for s in rest)


def test_a_pool_of_equals_is_shared_evenly_over_time(make_servers, build):
    lc = build(LeastConn, make_servers(1, 1, 1, 1))
    assert set(Counter(lc.pick(CTX).name for _ in range(400)).values()) == {100}
