"""Power of two choices (and of d choices).

Invariants: the ``d`` candidates of a pick (``options.choices``, default 2; all the
servers when there are fewer) are distinct servers; the one returned has the lowest
``active / weight`` of them, the first-drawn one on a tie; an excluded server is
never a candidate. ``d = 1`` is weighted random; the default ``d = 2`` path is the
original two-draw one, unchanged. With servers excluded (a retry), pools of more than
``SCAN_LIMIT`` servers draw the two candidates by rejection (``_large.two_choices``, the same
distribution) instead of rebuilding the cumulative weights without them (O(n)).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._large import SCAN_LIMIT, two_choices
from ._select import WeightedDraw, usable
from .base import Balancer, PickContext


class PowerOfTwoChoices(Balancer):
    """Power of two random choices (Mitzenmacher, "The Power of Two Choices in
    Randomized Load Balancing", IEEE TPDS 2001; HAProxy ``random(2)``, Envoy
    ``LEAST_REQUEST``): draw two distinct servers, keep the less loaded one.

    Both candidates are drawn by weight (the second among the rest) and load is
    compared per unit of weight. A tie keeps the first draw, whose probability is
    exactly ``w / Σw``, so a pool that is never busy gets shares ∝ weight.

    ``options.choices = d`` draws ``d`` distinct candidates instead ("join the
    shortest of d random queues", the supermarket model of the same paper): each
    further candidate is drawn by weight among the servers not yet drawn.
    """

    name = "p2c"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._draw = WeightedDraw(usable(self.servers))
        self._d = int(self.options.choices)
        if self._d < 1:
            raise ValueError(f"choices must be at least 1, not {self.options.choices!r}")

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        if exclude and self._d == 2 and len(self._draw.servers) > SCAN_LIMIT:
            a, b = two_choices(self._draw, self.rng, exclude)
            if a is None or b is None:
                return a
            return b if b.load.active * a.weight < a.load.active * b.weight else a
        draw = self._draw.without(exclude) if exclude else self._draw
        servers = draw.servers
        if len(servers) < 2:
            return servers[0] if servers else None
        if self._d != 2:
            return self._pick_d(draw)
        rng = self.rng
        i = draw.index(rng)
        a = servers[i]
        b = servers[draw.other(rng, i)]
        if b.load.active * a.weight < a.load.active * b.weight:
            return b
        return a

    def _pick_d(self, draw: WeightedDraw) -> Server:
        """The least loaded (per unit of weight) of ``d`` distinct weighted draws.

        A draw that repeats an earlier candidate is drawn again: conditioned on being
        new, a weighted draw is a weighted draw among the rest. After a few repeats in
        a row (one server holding most of the weight) the rest is drawn exactly from a
        draw without the candidates so far.
        """
        servers = draw.servers
        rng = self.rng
        d = min(self._d, len(servers))
        first = draw.index(rng)
        chosen = [first]
        best = servers[first]
        while len(chosen) < d:
            for _ in range(8):
                i = draw.index(rng)
                if i not in chosen:
                    break
            else:
                rest = draw.without([servers[j] for j in chosen])
                i = servers.index(rest.servers[rest.index(rng)])
            chosen.append(i)
            s = servers[i]
            if s.load.active * best.weight < best.load.active * s.weight:
                best = s
        return best
