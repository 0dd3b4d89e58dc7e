import math
from collections import Counter

import pytest

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.least_time import FAILURE_SAMPLE, PEAK_SHARE, LeastTime, cost_at

CTX = PickContext("10.0.0.1")
LATENCY = {"a": 0.010, "b": 0.500}


def run(lt, clock, seconds, step=0.010, exclude=()):
    """Requests one after another, each answered at once with its server's latency."""
    picks = Counter()
    for _ in range(round(seconds / step)):
        clock.advance(step)
        s = lt.pick(CTX, exclude)
        lt.on_done(s, True, LATENCY[s.name])
        picks[s.name] += 1
    return picks


def test_unmeasured_servers_are_tried_first_in_rotation(make_servers, build, clock):
    lt = build(LeastTime, make_servers(1, 1, 1), clock=clock)
    assert [lt.pick(CTX).name for _ in range(3)] == ["a", "b", "c"]


def test_an_unmeasured_server_gets_one_probe_at_a_time(make_servers, build, clock):
    servers = make_servers(1, 1)
    lt = build(LeastTime, servers, clock=clock)
    lt.on_done(servers[0], True, 0.2)
    servers[1].load.active = 1  # its first request is still out
    assert lt.pick(CTX) is servers[0]
    servers[0].load.active = 50
    assert lt.pick(CTX) is servers[0]
    servers[1].load.active = 0
    assert lt.pick(CTX) is servers[1]


def test_slow_server_gets_fewer_picks_and_is_reprobed_after_decay(make_servers, build, clock):
    lt = build(LeastTime, make_servers(1, 1), clock=clock, ewma_decay=10.0)
    first = run(lt, clock, 10.0)
    # one probe, a second once its first answer (a peak only) has faded below a's 10 ms
    # (~τ/10 · ln 50 ≈ 4 s), then avoided
    assert first["b"] == 2 and first["a"] == 998
    # b's EWMA decays toward 0 while a stays ~10 ms: b is probed again after ~τ·ln(50) ≈ 39 s
    later = run(lt, clock, 100.0)
    assert 2 <= later["b"] <= 4
    assert later["a"] > 9900


def test_cost_is_the_larger_of_a_time_weighted_ewma_and_a_short_lived_peak(make_servers, build, clock):
    s = make_servers(1)[0]
    tau = 10.0
    tau_peak = tau * PEAK_SHARE
    lt = build(LeastTime, [s], clock=clock, ewma_decay=tau)
    lt.on_done(s, True, 0.100)  # the first answer (connection set-up, cold start): a peak only
    assert s.load.ewma == 0.0 and s.load.peak == 0.100 and s.load.peak_stamp == clock.now
    clock.advance(1.0)
    lt.on_done(s, True, 0.020)  # the second starts the EWMA
    assert s.load.ewma == 0.020 and s.load.ewma_stamp == clock.now
    assert cost_at(s.load, clock(), tau, tau_peak) == pytest.approx(0.100 * math.exp(-1.0))
    clock.advance(5.0)
    keep = math.exp(-0.5)
    lt.on_done(s, True, 0.050)  # above the cost: the peak, and blended into the EWMA by the time since
    assert s.load.peak == 0.050 and s.load.ewma == pytest.approx(0.020 * keep + 0.050 * (1 - keep))
    assert cost_at(s.load, clock(), tau, tau_peak) == 0.050
    clock.advance(10.0)
    ewma = s.load.ewma * math.exp(-1.0)  # (the peak is long gone: 0.05 · e^-10)
    assert cost_at(s.load, clock(), tau, tau_peak) == pytest.approx(ewma)
    lt.on_done(s, True, 0.0)  # a burst of samples at the same instant barely moves it
    stamp_value = s.load.ewma
    lt.on_done(s, True, 0.0)
    assert s.load.ewma == stamp_value


def test_a_fast_failure_does_not_look_fast(make_servers, build, clock):
    servers = make_servers(1, 1)
    lt = build(LeastTime, servers, clock=clock)
    for s in servers:
        lt.on_done(s, True, 0.050)
    lt.on_done(servers[0], True, 0.050)
    lt.on_done(servers[1], False, 0.001)  # connection refused in 1 ms
    assert servers[1].load.peak == FAILURE_SAMPLE
    assert cost_at(servers[1].load, clock(), 10.0, 1.0) == FAILURE_SAMPLE
    lt.on_done(servers[1], False, 3.0)
    assert servers[1].load.peak == 3.0
    assert lt.pick(CTX) is servers[0]


def test_score_weighs_load_and_weight(make_servers, build, clock):
    servers = make_servers(1, 3)
    lt = build(LeastTime, servers, clock=clock)
    for s in servers:
        lt.on_done(s, True, 0.100)
    servers[0].load.active = 1  # 0.1 * 2 / 1 = 0.2
    servers[1].load.active = 4  # 0.1 * 5 / 3 ≈ 0.167
    assert lt.pick(CTX) is servers[1]
    servers[1].load.active = 6  # 0.1 * 7 / 3 ≈ 0.233
    assert lt.pick(CTX) is servers[0]


def test_measured_ties_rotate_exclude_and_empty(make_servers, build, clock):
    servers = make_servers(1, 1, 1, 0)
    lt = build(LeastTime, servers, clock=clock)
    for s in servers:
        lt.on_done(s, True, 0.100)
    assert [lt.pick(CTX).name for _ in range(4)] == ["a", "b", "c", "a"]
    assert lt.pick(CTX, servers[:2]) is servers[2]
    assert lt.pick(CTX, servers[:3]) is None  # weight 0 is never picked
    assert build(LeastTime, [], clock=clock).pick(CTX) is None


def test_ewma_decay_must_be_positive(make_servers, build):
    with pytest.raises(ValueError, match="ewma_decay"):
        build(LeastTime, make_servers(1), ewma_decay=0.0)
