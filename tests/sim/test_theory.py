import pytest

from steelyard.sim.builtin import mm1, supermarket
from steelyard.sim.scenario import parse_scenario
from steelyard.sim.theory import expected_mean, mm1_mean, mm1_quantile, supermarket_mean, supermarket_tail


def test_supermarket_limit_matches_the_papers_numbers():
    assert supermarket_mean(2, 0.9) == pytest.approx(2.6141, abs=5e-5)  # the example
    assert supermarket_mean(2, 0.5) == pytest.approx(1.2657, abs=5e-5)
    assert supermarket_mean(3, 0.9) == pytest.approx(2.0279, abs=5e-5)


def test_one_choice_is_an_mm1_queue():
    for load in (0.1, 0.5, 0.9):
        assert supermarket_mean(1, load) == pytest.approx(1 / (1 - load))
        assert mm1_mean(load) == pytest.approx(1 / (1 - load))


def test_mean_time_is_the_sum_of_the_tails_over_lambda():
    # Little's law: E[T] = E[queue] / λ = Σ_{i≥1} s_i / λ
    for d in (2, 3):
        tails = sum(supermarket_tail(d, 0.8, i) for i in range(1, 40))
        assert tails / 0.8 == pytest.approx(supermarket_mean(d, 0.8))


def test_mm1_quantile_is_exponential():
    assert mm1_quantile(0.99, 0.5) == pytest.approx(9.2103, abs=1e-4)


def test_unstable_loads_are_refused():
    with pytest.raises(ValueError):
        supermarket_mean(2, 1.0)
    with pytest.raises(ValueError):
        mm1_mean(1.2)


def test_expected_mean_only_for_the_scenarios_that_have_one():
    market = parse_scenario(supermarket(10, 3))
    assert expected_mean(market, "p2c", 0.9) == pytest.approx(supermarket_mean(3, 0.9))
    assert expected_mean(market, "random", 0.9) == pytest.approx(10.0)
    assert expected_mean(market, "least_conn", 0.9) is None
    assert expected_mean(market, "p2c", 1.1) is None
    assert expected_mean(parse_scenario(mm1()), "round_robin", 0.5) == pytest.approx(2.0)
