"""Fixtures for the balancer tests: servers, builders and a fake clock.

The factories are session-scoped because they hold no state, which also lets
hypothesis tests use them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from steelyard.core.balancing.base import Balancer, BalancerOptions
from steelyard.core.model import Server


def _make_servers(*weights: int, names: str | None = None) -> list[Server]:
    """Servers a, b, c, ... (or ``names``, one letter each) with the given weights."""
    names = names or "abcdefghijklmnopqrstuvwxyz"
    return [Server(names[i], "127.0.0.1", 8000 + i, w) for i, w in enumerate(weights)]


def _build(
    cls: type[Balancer],
    servers: list[Server],
    *,
    seed: int = 0,
    clock: Callable[[], float] = lambda: 0.0,
    **options: object,
) -> Balancer:
    return cls(servers, rng=random.Random(seed), clock=clock, options=BalancerOptions(**options))


@pytest.fixture(scope="session")
def make_servers():
    return _make_servers


@pytest.fixture(scope="session")
def build():
    return _build


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
