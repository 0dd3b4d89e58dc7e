"""Weighted least connections.

Invariants: the returned server minimises ``active / weight`` over the usable,
non-excluded servers; among equals the picks rotate (an idle pool gets round robin).
Pools of more than ``EXACT_LIMIT`` (100) usable servers pick the better of two weighted random
servers instead (``_large.two_choices``, O(log n), as Envoy's least request does): not the
minimum of the whole pool, but never the worse of two, and ties go to the first draw.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._large import EXACT_LIMIT, two_choices
from ._select import TieRotor, WeightedDraw, usable
from .base import Balancer, PickContext


class LeastConn(Balancer):
    """Weighted least connections (nginx ``least_conn``, HAProxy ``leastconn``):
    fewest in-flight requests per unit of weight, ties served round robin.

    Ratios are compared by cross-multiplication (``a1·w2 < a2·w1``): exact on
    integers, and no division on the hot path.
    """

    name = "least_conn"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rotor = TieRotor(usable(self.servers))
        if self._rotor.n > EXACT_LIMIT:
            self._draw = WeightedDraw(self._rotor.ring[: self._rotor.n])
            self.pick = self._pick_sampled  # type: ignore[method-assign]

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        rotor = self._rotor
        ring = rotor.ring
        best = None
        at = 0
        best_active = 0
        best_weight = 1
        for i in rotor.order():
            s = ring[i]
            if exclude and s in exclude:
                continue
            active = s.load.active
            if best is None or active * best_weight < best_active * s.weight:
                best, at, best_active, best_weight = s, i, active, s.weight
                if not active:
                    break  # nothing scores below an idle server; the first one wins the tie
        if best is not None:
            rotor.won(at)
        return best

    def _pick_sampled(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        a, b = two_choices(self._draw, self.rng, exclude)
        if a is None or b is None:
            return a
        return b if b.load.active * a.weight < a.load.active * b.weight else a
