"""Weighted random.

Invariants: each pick returns server i with probability ``w_i / Σw`` over the
usable, non-excluded servers, using only the injected ``rng``. With servers excluded
(a retry), pools of more than ``SCAN_LIMIT`` servers draw again while the draw is excluded
(the same distribution) instead of rebuilding the cumulative weights (O(n)).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._large import SCAN_LIMIT, draw_avoiding
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
        if exclude and len(self._draw.servers) > SCAN_LIMIT:
            i = draw_avoiding(self._draw, self.rng, exclude)
            return self._draw.servers[i] if i >= 0 else None
        draw = self._draw.without(exclude) if exclude else self._draw
        if not draw.servers:
            return None
        return draw.servers[draw.index(self.rng)]
