"""The engine against closed forms: Mitzenmacher's supermarket limit and the M/M/1 queue.

Requests per case are sized so that the standard error of the simulated mean is
below ~0.8% (batch means at n = 100), so the 3% check has room for the finite-n
effect (≈ +1% for d ≥ 2 at λ = 0.9) and 3σ of noise. Seeded: deterministic.
"""

import pytest

from steelyard.sim.builtin import mm1, supermarket
from steelyard.sim.engine import simulate
from steelyard.sim.scenario import parse_scenario
from steelyard.sim.theory import mm1_quantile, supermarket_mean

#: (d, λ) -> measured requests. M/M/1-like queues at λ = 0.9 mix slowly: d = 1 needs the most.
REQUESTS = {
    (1, 0.5): 400_000,
    (1, 0.7): 1_000_000,
    (1, 0.9): 6_000_000,
    (2, 0.5): 300_000,
    (2, 0.7): 400_000,
    (2, 0.9): 2_000_000,
    (3, 0.5): 300_000,
    (3, 0.7): 400_000,
    (3, 0.9): 2_000_000,
}


@pytest.mark.parametrize(("d", "load"), list(REQUESTS))
def test_mean_time_in_system_is_within_3_percent_of_the_limit(d, load):
    data = supermarket(n=100, d=d)
    data.update(requests=REQUESTS[d, load], warmup=40_000, seed=7)
    result = simulate(parse_scenario(data), "p2c", load)
    theory = supermarket_mean(d, load)
    assert result.theory == pytest.approx(theory)
    assert result.served == result.measured and result.drops == result.failed == 0
    print(f"d={d} λ={load}: simulated {result.mean:.4f}, limit {theory:.4f}, {100 * (result.mean / theory - 1):+.2f}%")
    assert abs(result.mean / theory - 1) <= 0.03, f"d={d} λ={load}: simulated {result.mean:.4f}, limit {theory:.4f}"


def test_a_single_server_is_an_mm1_queue():
    data = mm1()
    data.update(requests=300_000, warmup=10_000, seed=3)
    result = simulate(parse_scenario(data), "round_robin", 0.5)
    assert abs(result.mean / 2.0 - 1) <= 0.03  # 1 / (μ − λ)
    assert abs(result.p99 / mm1_quantile(0.99, 0.5) - 1) <= 0.03  # exponential time in system
    assert abs(result.p50 / mm1_quantile(0.5, 0.5) - 1) <= 0.03
    assert result.share == {"s": 1.0}
