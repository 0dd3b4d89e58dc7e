import random
from statistics import fmean

import pytest

from steelyard.sim.distributions import arrival_sampler, service_mean, service_sampler, service_scv
from steelyard.sim.scenario import ArrivalSpec, ServiceSpec

SPECS = [
    ServiceSpec(kind="exponential", mean=2.0),
    ServiceSpec(kind="lognormal", mean=0.02, sigma=0.8),
    ServiceSpec(kind="bimodal", short=0.5, long=5.0, long_share=0.1),
    ServiceSpec(kind="constant", mean=3.0),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_service_samplers_have_the_stated_mean_and_variability(spec):
    draw = service_sampler(spec, random.Random(1))
    xs = [draw() for _ in range(100_000)]
    m = fmean(xs)
    assert m == pytest.approx(service_mean(spec), rel=0.02)
    scv = fmean((x - m) ** 2 for x in xs) / m**2
    assert scv == pytest.approx(service_scv(spec), rel=0.1, abs=1e-9)
    assert min(xs) > 0


@pytest.mark.parametrize(
    "spec",
    [ArrivalSpec(), ArrivalSpec(kind="bursty", peak=6.0, burst_share=0.2, burst_length=5.0)],
    ids=lambda s: s.kind,
)
def test_arrival_processes_have_the_stated_long_run_rate(spec):
    nxt = arrival_sampler(spec, 50.0, random.Random(2))
    t, times = 0.0, []
    for _ in range(200_000):
        t = nxt(t)
        times.append(t)
    assert all(b > a for a, b in zip(times, times[1:]))
    assert 200_000 / t == pytest.approx(50.0, rel=0.03)


def test_bursty_arrivals_are_more_variable_than_poisson():
    def counts(spec):
        nxt, t, per = arrival_sampler(spec, 10.0, random.Random(3)), 0.0, [0] * 2000
        while (t := nxt(t)) < 2000:
            per[int(t)] += 1
        return fmean((c - 10) ** 2 for c in per)  # variance of arrivals per second; 10 for Poisson

    assert counts(ArrivalSpec()) == pytest.approx(10, rel=0.15)
    assert counts(ArrivalSpec(kind="bursty", peak=8.0, burst_share=0.1, burst_length=10.0)) > 50


def test_exponential_draws_are_the_standard_librarys():
    # written out for speed, they must stay the very floats ``Random.expovariate`` gives
    # (the simulator's results are pinned to them)
    draw = service_sampler(ServiceSpec(kind="exponential", mean=2.0), random.Random(4))
    ref = random.Random(4)
    assert [draw() for _ in range(1000)] == [ref.expovariate(0.5) for _ in range(1000)]
    nxt = arrival_sampler(ArrivalSpec(), 7.0, random.Random(5))
    ref, t, u = random.Random(5), 0.0, 0.0
    for _ in range(1000):
        t, u = nxt(t), u + ref.expovariate(7.0)
        assert t == u
