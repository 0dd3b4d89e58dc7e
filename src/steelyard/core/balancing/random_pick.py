"""Weighted random.

Invariants: each pick returns server i with probability ``w_i / Σw`` over the
usable, non-excluded servers, using only the injected ``rng``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._select import WeightedDraw, usable
from .base import Balancer, PickContext


class RandomPick(Balancer):
    """Weighted random choice (HAProxy ``random(1)``, nginx ``random``): one uniform
    draw bisected into cumulative weights, O(log n).
    """

    name = "random"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._draw = WeightedDraw(usable(self.servers))

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        draw = self._draw.without(exclude) if exclude else self._draw
        if not draw.servers:
            return None
        return draw.servers[draw.index(self.rng)]
