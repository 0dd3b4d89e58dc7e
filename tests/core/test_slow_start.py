"""steelyard.core.slow_start.SlowStart: a returning server's share ramps up, not in one step."""

from __future__ import annotations

import random

import pytest

from steelyard.core.balancing import BalancerOptions, PickContext, resolve_algorithm
from steelyard.core.model import Server
from steelyard.core.slow_start import SlowStart


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("algorithm", ["round_robin", "weighted_round_robin", "least_conn", "least_time", "p2c"])
def test_the_share_of_a_returning_server_grows_over_the_window(algorithm):
    clock, rng = Clock(), random.Random(7)
    servers = [Server(n, "127.0.0.1", 9000 + i) for i, n in enumerate("abc")]
    fresh = servers[2]
    inner = resolve_algorithm(algorithm)(servers, rng=rng, clock=clock, options=BalancerOptions())
    picker = SlowStart(inner, {fresh: 0.0}, window=30.0, floor=0.1, clock=clock, rng=rng)
    shares = []
    for t in (0.0, 10.0, 20.0, 29.0, 31.0):
        clock.now = t
        n = 3000
        got = sum(picker.pick(PickContext("10.0.0.1")) is fresh for _ in range(n))
        shares.append(got / n)
    fair = 1 / 3
    assert shares[0] < 0.1 * fair * 1.6  # starts near the floor
    assert shares == sorted(shares)  # never shrinks while the window runs
    assert shares[1] < shares[2] < shares[3]
    assert abs(shares[-1] - fair) < 0.05  # full share once the window is over


def test_factor_is_linear_from_the_floor_and_a_lone_ramping_server_is_still_used():
    clock, rng = Clock(), random.Random(1)
    only = Server("only", "127.0.0.1", 1)
    inner = resolve_algorithm("round_robin")([only], rng=rng, clock=clock, options=BalancerOptions())
    picker = SlowStart(inner, {only: 10.0}, window=20.0, floor=0.2, clock=clock, rng=rng)
    assert picker.factor(only, 10.0) == pytest.approx(0.2)
    assert picker.factor(only, 20.0) == pytest.approx(0.6)
    assert picker.factor(only, 40.0) == 1.0
    assert all(picker.pick(PickContext()) is only for _ in range(50))  # nothing else is left
    assert picker.on_done == inner.on_done
