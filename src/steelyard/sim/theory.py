"""Closed-form results the simulator is checked against.

- ``supermarket_mean(d, λ)``: the expected time in system in the supermarket model
  (n → ∞ FIFO servers of rate 1, Poisson arrivals at rate λn, each arrival joins the
  shortest of d queues chosen at random). Mitzenmacher, "The Power of Two Choices in
  Randomized Load Balancing", IEEE TPDS 12(10), 2001, Theorem/Corollary 3.6:
  ``T_d(λ) = Σ_{i≥1} λ^((d^i − d)/(d − 1))`` for d ≥ 2, and ``1/(1 − λ)`` for d = 1
  (each queue is then an M/M/1 queue).
- ``supermarket_tail(d, λ, i)``: the fixed point ``s_i = λ^((d^i − 1)/(d − 1))``, the
  fraction of queues holding at least i requests (same paper, Lemma 3.2).
- ``mm1_mean`` and ``mm1_quantile``: an M/M/1 queue's time in system is exponential
  with rate ``μ − λ`` (Kleinrock, Queueing Systems vol. 1, 1975, §3.2).
"""

from __future__ import annotations

from math import log
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scenario import Scenario


def supermarket_tail(d: int, load: float, i: int) -> float:
    """Limit fraction of servers with at least ``i`` requests (``s_0 = 1``)."""
    _check(d, load)
    if d == 1:
        return load**i
    return load ** ((d**i - 1) / (d - 1))


def supermarket_mean(d: int, load: float, tolerance: float = 1e-12) -> float:
    """Mitzenmacher's limit of the mean time in system, ``T_d(λ)``, for ``0 ≤ λ < 1``."""
    _check(d, load)
    if d == 1:
        return 1.0 / (1.0 - load)
    total, i = 0.0, 1
    while True:
        term = load ** ((d**i - d) / (d - 1))
        total += term
        if term < tolerance or i > 64:  # terms fall doubly exponentially; 64 is never reached for λ < 1
            return total
        i += 1


def mm1_mean(arrival_rate: float, service_rate: float = 1.0) -> float:
    """Mean time in system of an M/M/1 queue: ``1 / (μ − λ)``."""
    if not 0.0 <= arrival_rate < service_rate:
        raise ValueError("an M/M/1 queue is stable only for 0 ≤ λ < μ")
    return 1.0 / (service_rate - arrival_rate)


def mm1_quantile(p: float, arrival_rate: float, service_rate: float = 1.0) -> float:
    """The ``p``-quantile of an M/M/1 queue's time in system: ``−ln(1 − p) / (μ − λ)``."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    return -log(1.0 - p) * mm1_mean(arrival_rate, service_rate)


def _check(d: int, load: float) -> None:
    if d < 1:
        raise ValueError("d must be at least 1")
    if not 0.0 <= load < 1.0:
        raise ValueError("the supermarket model is stable only for 0 ≤ λ < 1")


def expected_mean(scenario: Scenario, algorithm: str, load: float) -> float | None:
    """The closed-form mean time in system for ``scenario`` (its ``theory`` key), if one applies.

    ``supermarket``: ``T_d(λ)`` times the mean service time, for ``p2c`` with d = ``choices``
    (d = 1 is random) and ``random`` (d = 1). ``mm1``: ``mean / (1 − ρ)`` for one server.
    """
    mean = scenario.service.mean
    if scenario.theory == "supermarket" and load < 1.0:
        if algorithm == "p2c":
            return mean * supermarket_mean(scenario.options.choices, load)
        if algorithm == "random":
            return mean * supermarket_mean(1, load)
    if scenario.theory == "mm1" and load < 1.0:
        return mean / (1.0 - load)
    return None
