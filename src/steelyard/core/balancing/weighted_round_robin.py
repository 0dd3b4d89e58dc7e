"""Smooth weighted round robin, as in nginx.

Invariants: starting from the initial state, every window of Σw consecutive picks
(nothing excluded) returns each server exactly ``w`` times, and the picks of a heavy
server are spread out rather than bunched (5,1,1 gives a a b a c a a). Weight 0
servers are never picked. Pools of more than ``SCAN_LIMIT`` usable servers are scheduled
earliest-deadline-first instead (``_large.Edf``, O(log n) per pick): the same exact shares
per window of Σw picks, in another (also interleaved) order.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._large import SCAN_LIMIT, Edf
from ._select import usable
from .base import Balancer, PickContext


class WeightedRoundRobin(Balancer):
    """Smooth weighted round robin (nginx ``ngx_http_upstream_get_peer``, 2012).

    Each pick adds every server's weight to its ``current`` value, returns the
    server with the largest ``current`` (the first one on a tie) and subtracts the
    sum of the weights taking part from the winner. The ``current`` values always
    sum to zero, which is what keeps a cycle exact. Excluded servers sit the pick
    out entirely, as nginx's "tried" peers do. nginx's ``effective_weight`` (which
    drops after failures) is not needed here: failing servers are removed by health
    checking and slow start arrives as a changed weight in a new snapshot.
    """

    name = "weighted_round_robin"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._servers = usable(self.servers)
        self._weights = [s.weight for s in self._servers]
        self._current = [0] * len(self._servers)
        self._span = range(len(self._servers))
        if len(self._servers) > SCAN_LIMIT:
            self.pick = Edf(self._servers).pick  # type: ignore[method-assign]

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        servers = self._servers
        weights = self._weights
        current = self._current
        best = -1
        top = 0
        total = 0
        for i in self._span:
            if exclude and servers[i] in exclude:
                continue
            w = weights[i]
            total += w
            c = current[i] + w
            current[i] = c
            if best < 0 or c > top:
                best = i
                top = c
        if best < 0:
            return None
        current[best] = top - total
        return servers[best]
