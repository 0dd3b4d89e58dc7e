"""Large pools (more than SCAN_LIMIT or EXACT_LIMIT usable servers): EDF weighted round robin and the
two-choice least_conn / least_time (and their cluster twins), ``_large``'s helpers."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.balancing._large import EXACT_LIMIT, SCAN_LIMIT, Edf, two_choices
from steelyard.core.balancing._select import WeightedDraw
from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.cluster_load import ClusterLeastConn, ClusterLeastTime
from steelyard.core.balancing.least_conn import LeastConn
from steelyard.core.balancing.least_time import LeastTime
from steelyard.core.balancing.p2c import PowerOfTwoChoices
from steelyard.core.balancing.random_pick import RandomPick
from steelyard.core.balancing.weighted_round_robin import WeightedRoundRobin
from steelyard.core.model import Server

CTX = PickContext("10.0.0.1")
BIG = SCAN_LIMIT + 1  # (weighted round robin, random, p2c)
HUGE = EXACT_LIMIT + 1  # (least_conn, least_time)


def many(weights):
    return [Server(f"s{i}", "127.0.0.1", 10000 + i, w) for i, w in enumerate(weights)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=BIG, max_size=BIG + 20), st.integers(1, 3))
def test_edf_gives_exact_shares_in_every_cycle(build, weights, cycles):
    wrr = build(WeightedRoundRobin, many(weights))
    total = sum(weights)
    for _ in range(cycles):
        counts = Counter(wrr.pick(CTX) for _ in range(total))
        assert counts == {s: s.weight for s in wrr.servers}


def test_edf_spreads_a_heavy_server_and_sorts_ties_by_position():
    servers = tuple(many([5, 1, 1]))
    edf = Edf(servers)
    order = "".join(edf.pick(CTX).name[1] for _ in range(14))
    # a's picks are due at 0.1 0.3 0.5 0.7 0.9, b's and c's at 0.5: ties go to the earlier position
    assert order == "00012000001200"


def test_edf_sits_excluded_servers_out_without_losing_their_turn(build):
    servers = many([1] * BIG)
    wrr = build(WeightedRoundRobin, servers)
    first = [wrr.pick(CTX) for _ in range(3)]
    assert first == servers[:3]
    assert wrr.pick(CTX, {servers[3], servers[4]}) is servers[5]
    assert [wrr.pick(CTX) for _ in range(2)] == servers[3:5]  # their deadlines were kept
    assert wrr.pick(CTX, set(servers)) is None


def test_up_to_the_exact_limit_least_conn_still_finds_the_minimum(build):
    servers = many([1] * EXACT_LIMIT)
    for s in servers:
        s.load.active = 3
    servers[77].load.active = 0
    lc = build(LeastConn, servers)
    assert [lc.pick(CTX) for _ in range(3)] == [servers[77]] * 3


def test_weight_zero_servers_do_not_count_toward_the_limit(build):
    servers = many([0] * 10 + [1] * SCAN_LIMIT)
    wrr = build(WeightedRoundRobin, servers)
    picks = "".join(wrr.pick(CTX).name for _ in range(4))
    assert picks == "s10s11s12s13"  # the small-pool scan (exact nginx order) still runs


@pytest.mark.parametrize("cls", [LeastConn, ClusterLeastConn])
def test_two_choice_least_conn_keeps_the_less_loaded_of_its_two(build, cls):
    servers = many([1] * 200)
    for i, s in enumerate(servers):
        s.load.active = i % 7
    lc = build(cls, servers, seed=3)
    rng = random.Random(3)  # the same draws the balancer makes
    draw = WeightedDraw(tuple(servers))
    for _ in range(500):
        a, b = two_choices(draw, rng, ())
        assert lc.pick(CTX) is (b if b.load.active < a.load.active else a)


def test_two_choice_least_conn_never_picks_the_most_loaded_and_favours_idle(build):
    servers = many([1] * 200)
    for s in servers[:100]:
        s.load.active = 10
    lc = build(LeastConn, servers, seed=1)
    picks = Counter(lc.pick(CTX) in servers[100:] for _ in range(4000))
    # an idle server wins unless both draws are busy: P(busy) = ¼
    assert 0.7 < picks[True] / 4000 < 0.8


def test_cluster_least_conn_counts_the_remote_load(build):
    servers = many([1] * HUGE)
    for s in servers[1:]:
        s.load.remote = 5
    lc = build(ClusterLeastConn, servers, seed=2)
    picks = Counter(lc.pick(CTX) for _ in range(2000))
    assert picks[servers[0]] > 2000 * 1.5 / HUGE  # it wins every pair it is in


@pytest.mark.parametrize("cls", [LeastTime, ClusterLeastTime])
def test_two_choice_least_time_avoids_a_slow_server(build, clock, cls):
    servers = many([1] * HUGE)
    lt = build(cls, servers, clock=clock)
    for s in servers:
        s.load.ewma, s.load.ewma_stamp = 0.01, clock.now
    servers[0].load.ewma = 5.0
    picks = Counter(lt.pick(CTX) for _ in range(3000))
    assert picks[servers[0]] < 3000 * 1.0 / HUGE / 5  # it loses every pair it is in
    assert lt.score(servers[0], clock.now) > lt.score(servers[1], clock.now)


@pytest.mark.parametrize(
    "cls", [LeastConn, LeastTime, ClusterLeastConn, ClusterLeastTime, RandomPick, PowerOfTwoChoices]
)
def test_large_pools_honour_exclude(build, cls):
    servers = many([1] * (HUGE if cls in (LeastConn, LeastTime, ClusterLeastConn, ClusterLeastTime) else BIG))
    balancer = build(cls, servers, seed=5)
    allowed = set(servers[:2])
    exclude = set(servers) - allowed
    assert {balancer.pick(CTX, exclude) for _ in range(200)} == allowed
    assert balancer.pick(CTX, set(servers) - {servers[7]}) is servers[7]
    assert balancer.pick(CTX, set(servers)) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=BIG, max_size=60), st.data())
def test_two_choices_are_distinct_and_allowed(weights, data):
    servers = tuple(many(weights))
    exclude = set(data.draw(st.sets(st.sampled_from(servers), max_size=len(servers))))
    rng = random.Random(data.draw(st.integers(0, 1000)))
    a, b = two_choices(WeightedDraw(servers), rng, exclude)
    left = len(servers) - len(exclude)
    assert (a is None) == (left == 0) and (b is None) == (left < 2)
    assert a not in exclude and (b is None or (b not in exclude and b is not a))


def test_cluster_least_time_prices_other_nodes_latency_and_load(build, clock):
    servers = many([1] * HUGE)
    lt = build(ClusterLeastTime, servers, clock=clock)
    for s in servers:
        s.load.remote_ewma = 0.01
    servers[0].load.remote_ewma = 2.0  # never measured here; slow through the other balancers
    servers[1].load.remote = 50  # busy through the other balancers
    picks = Counter(lt.pick(CTX) for _ in range(3000))
    assert picks[servers[0]] < 3000 / HUGE / 5 and picks[servers[1]] < 3000 / HUGE / 5
