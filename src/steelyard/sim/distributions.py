"""Samplers for service times and arrival processes, each drawing only from the
``random.Random`` it is given.

Invariants:

- A service sampler is a zero-argument callable returning a duration > 0 (before
  the server's speed divides it) whose long-run mean is ``service_mean(spec)``.
- An arrival sampler is ``next_arrival(now) -> time > now``; its long-run rate is
  the ``rate`` it was built with, bursty or not.
- Exponential draws are written out as ``random.Random.expovariate`` makes them
  (``-log(1 - random()) / rate``, the same floats): the simulator makes two per
  request, and a Python call less for each is worth it there.
- Bursty arrivals are a two-state Markov-modulated Poisson process (Fischer and
  Meier-Hellstern, "The Markov-modulated Poisson process (MMPP) cookbook",
  Performance Evaluation 18, 1993): calm and burst periods of exponential length,
  the burst rate ``peak`` times the calm rate, a share ``burst_share`` of the time
  in bursts. Memorylessness lets a draw that crosses a state change restart there.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from math import exp, log
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scenario import ArrivalSpec, ServiceSpec

Sampler = Callable[[], float]
NextArrival = Callable[[float], float]


def service_mean(spec: ServiceSpec) -> float:
    """The mean service time of ``spec`` at speed 1."""
    if spec.kind == "bimodal":
        return (1.0 - spec.long_share) * spec.short + spec.long_share * spec.long
    return spec.mean


def service_sampler(spec: ServiceSpec, rng: random.Random) -> Sampler:
    """A sampler of service times at speed 1 (seconds of simulated time)."""
    kind = spec.kind
    if kind == "exponential":
        rate = 1.0 / spec.mean
        uniform = rng.random
        return lambda: -log(1.0 - uniform()) / rate  # (``rng.expovariate(rate)``, one call less)
    if kind == "lognormal":
        # mean = exp(mu + sigma²/2), so mu = ln(mean) - sigma²/2 keeps the mean as given
        sigma = spec.sigma
        mu = log(spec.mean) - sigma * sigma / 2.0
        lognorm = rng.lognormvariate
        return lambda: lognorm(mu, sigma)
    if kind == "bimodal":
        short, long, share = spec.short, spec.long, spec.long_share
        uniform = rng.random
        return lambda: long if uniform() < share else short
    if kind == "constant":
        mean = spec.mean
        return lambda: mean
    raise ValueError(f"unknown service kind {kind!r}")


def service_scv(spec: ServiceSpec) -> float:
    """Squared coefficient of variation (variance / mean²) of ``spec``: 1 for exponential."""
    if spec.kind == "exponential":
        return 1.0
    if spec.kind == "lognormal":
        return exp(spec.sigma**2) - 1.0
    if spec.kind == "bimodal":
        m = service_mean(spec)
        second = (1.0 - spec.long_share) * spec.short**2 + spec.long_share * spec.long**2
        return second / (m * m) - 1.0
    return 0.0


def arrival_sampler(spec: ArrivalSpec, rate: float, rng: random.Random) -> NextArrival:
    """``next_arrival(now)`` for a process of long-run ``rate`` arrivals per second."""
    if rate <= 0.0:
        raise ValueError("the arrival rate must be positive")
    expo = rng.expovariate
    if spec.kind == "poisson":
        uniform = rng.random
        return lambda now: now + -log(1.0 - uniform()) / rate  # (``now + expo(rate)``, one call less)
    if spec.kind != "bursty":
        raise ValueError(f"unknown arrival kind {spec.kind!r}")
    share, peak = spec.burst_share, spec.peak
    calm_rate = rate / (1.0 - share + peak * share)
    rates = (calm_rate, calm_rate * peak)
    mean_stay = (spec.burst_length * (1.0 - share) / share, spec.burst_length)  # calm, burst
    state = [0, expo(1.0 / mean_stay[0])]  # current state, time it ends

    def next_arrival(now: float) -> float:
        while True:
            t = now + expo(rates[state[0]])
            if t < state[1]:
                return t
            now = state[1]  # memoryless: restart the draw at the state change
            state[0] ^= 1
            state[1] = now + expo(1.0 / mean_stay[state[0]])

    return next_arrival


__all__ = ["arrival_sampler", "service_mean", "service_sampler", "service_scv"]
