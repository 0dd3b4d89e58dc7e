"""Power of two choices.

Invariants: the two candidates of a pick are distinct servers; the one returned has
the lower ``active / weight`` of the two, the first-drawn one on a tie; an excluded
server is never a candidate.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._select import WeightedDraw, usable
from .base import Balancer, PickContext


class PowerOfTwoChoices(Balancer):
    """Power of two random choices (Mitzenmacher, "The Power of Two Choices in
    Randomized Load Balancing", IEEE TPDS 2001; HAProxy ``random(2)``, Envoy
    ``LEAST_REQUEST``): draw two distinct servers, keep the less loaded one.

    Both candidates are drawn by weight (the second among the rest) and load is
    compared per unit of weight. A tie keeps the first draw, whose probability is
    exactly ``w / Σw``, so a pool that is never busy gets shares ∝ weight.
    """

    name = "p2c"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._draw = WeightedDraw(usable(self.servers))

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        draw = self._draw.without(exclude) if exclude else self._draw
        servers = draw.servers
        if len(servers) < 2:
            return servers[0] if servers else None
        rng = self.rng
        i = draw.index(rng)
        a = servers[i]
        b = servers[draw.other(rng, i)]
        if b.load.active * a.weight < a.load.active * b.weight:
            return b
        return a
