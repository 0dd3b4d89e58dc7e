"""Selection helpers shared by several balancers.

Invariants:

- ``usable`` is the one place that decides which servers an algorithm may return:
  weight 0 means "never picked", for every built-in algorithm.
- ``TieRotor`` scans start just after the previous winner, so among servers that
  score equally the picks go round robin (an idle pool is spread evenly).
- ``WeightedDraw`` returns index ``i`` with probability ``w_i / Σw``; ``other``
  never returns the index it is given.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from ..model import Server

if TYPE_CHECKING:
    import random


def usable(servers: Iterable[Server]) -> tuple[Server, ...]:
    """The servers an algorithm may pick: those of positive weight, in order."""
    return tuple([s for s in servers if s.weight > 0])  # (a list first: faster than a generator)


class TieRotor:
    """Rotating scan order over a fixed server list (round robin among ties).

    ``ring`` is the list twice over, so ``ring[i] for i in order()`` visits each
    server once, starting at ``start``, without a modulo per step. A picker that
    keeps the *first* best server of the scan and reports it with ``won`` gets
    strict rotation among equals; plain round robin is the case where all are equal.
    """

    __slots__ = ("n", "ring", "start")

    def __init__(self, servers: tuple[Server, ...]) -> None:
        self.ring = servers * 2
        self.n = len(servers)
        self.start = 0

    def order(self) -> range:
        return range(self.start, self.start + self.n)

    def won(self, i: int) -> None:
        """Record that ``ring[i]`` was picked: the next scan starts after it."""
        i += 1
        self.start = i if i < self.n else i - self.n


class WeightedDraw:
    """Weighted sampling by bisecting cumulative weights (O(log n), allocation-free).

    ``servers`` must all have positive weight (use ``usable``).
    """

    __slots__ = ("cum", "servers", "total")

    def __init__(self, servers: tuple[Server, ...]) -> None:
        self.servers = servers
        self.cum: list[int] = []
        total = 0
        for s in servers:
            total += s.weight
            self.cum.append(total)
        self.total = total

    def index(self, rng: random.Random) -> int:
        # random() < 1 is a multiple of 2**-53, so random() * total < total for an
        # integer total: the bisect never runs off the end.
        return bisect_right(self.cum, rng.random() * self.total)

    def other(self, rng: random.Random, i: int) -> int:
        """A second index ≠ ``i``, drawn by weight among the rest (needs ≥ 2 servers).

        Draws on a line with ``i``'s segment cut out, then maps past the cut.
        """
        # The clip to the last index guards against r + w rounding up to the total;
        # it cannot yield i, since for the last i every draw lands before the cut.
        cum = self.cum
        lo = cum[i - 1] if i else 0
        r = rng.random() * (self.total - (cum[i] - lo))
        if r >= lo:
            r += cum[i] - lo
        return bisect_right(cum, r, 0, len(cum) - 1)

    def without(self, exclude: Collection[Server]) -> WeightedDraw:
        """The same draw over the servers not in ``exclude`` (retry path; allocates)."""
        return WeightedDraw(tuple(s for s in self.servers if s not in exclude))
