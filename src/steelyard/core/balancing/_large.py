"""Picks that do not grow with the pool, for large pools.

Weighted round robin up to ``SCAN_LIMIT`` usable servers, and least_conn and least_time up to
``EXACT_LIMIT``, scan every server per pick (exact: nginx's smooth WRR sequence, the true
minimum, ties in turn). A scan costs about 0.1–0.3 µs per server, so above those sizes they
switch to:

- ``Edf``: earliest-deadline-first scheduling (stride scheduling, Waldspurger 1995; Envoy's
  ``EdfScheduler``), O(log n) per pick from a binary heap. Server i's k-th pick is due at
  ``(k - ½) / w_i``; picks go in deadline order, ties to the lower index. Every window of
  Σw picks from the start gives each server exactly ``w`` picks, as smooth WRR does, and a
  heavy server's picks are spread out; the order within a window differs from nginx's.
- ``two_choices``: two distinct weighted random candidates (O(log n) bisects), of which the
  caller keeps the better by its own score — Envoy's ``LEAST_REQUEST`` and Finagle/Linkerd's
  P2C over peak EWMA. Trade-off: the pick is no longer the pool's minimum but the better of
  two random servers; with many servers that is what keeps the maximum load within
  O(log log n) of the mean (Mitzenmacher 2001) and it never reads more than two servers'
  load, which also makes it insensitive to load counts changing between picks (other
  workers, other cluster nodes). Ties go to the first draw (weighted random, not in turn).

Invariants: neither ever returns an excluded server; ``two_choices`` returns two distinct
servers, or one (then ``None`` second) when only one is left.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection
from heapq import heapify, heappop, heappush, heapreplace
from typing import TYPE_CHECKING

from ..model import Server
from ._select import WeightedDraw

if TYPE_CHECKING:
    import random

#: Weighted round robin over more usable servers than this is scheduled EDF (the same shares);
#: random and p2c retries over more draw by rejection.
SCAN_LIMIT = 32

#: least_conn and least_time over more usable servers than this sample two (no longer the exact
#: minimum; up to here a scan costs at most ~10 µs, and exactness is what the simulator's
#: scenarios, e.g. herding on stale load with 100 servers, show of these algorithms).
EXACT_LIMIT = 100

#: Rejection draws tried before an excluded-aware draw falls back to an O(n) one.
TRIES = 16


class Edf:
    """Earliest deadline first over positive weights (see the module docstring)."""

    __slots__ = ("heap", "servers", "weights")

    def __init__(self, servers: tuple[Server, ...]) -> None:
        self.servers = servers
        self.weights = weights = [s.weight for s in servers]
        # (deadline of the next pick, index, picks so far): deadlines are computed from k,
        # never accumulated, so they do not drift however long the schedule runs
        self.heap = [(0.5 / w, i, 0) for i, w in enumerate(weights)]
        if weights and min(weights) != max(weights):  # (equal weights: sorted already, so a heap)
            heapify(self.heap)

    def pick(self, ctx: object, exclude: Collection[Server] = ()) -> Server | None:
        """The balancer's ``pick`` (``ctx`` unused), bound in its place for large pools."""
        heap = self.heap
        if not heap:
            return None
        servers = self.servers
        if not exclude:
            _, i, k = heap[0]
            k += 1
            heapreplace(heap, ((k + 0.5) / self.weights[i], i, k))
            return servers[i]
        skipped = []  # excluded servers sit this pick out, keeping their deadlines
        while heap and servers[heap[0][1]] in exclude:
            skipped.append(heappop(heap))
        found = None
        if heap:
            _, i, k = heap[0]
            k += 1
            heapreplace(heap, ((k + 0.5) / self.weights[i], i, k))
            found = servers[i]
        for entry in skipped:
            heappush(heap, entry)
        return found


def draw_avoiding(draw: WeightedDraw, rng: random.Random, exclude: Collection[Server], other: int = -1) -> int:
    """A weighted draw among the servers neither in ``exclude`` nor at index ``other``; -1 if
    none is left. Rejection first (exact: a weighted draw conditioned on being allowed), then,
    when most of the weight is refused, one O(n) draw over what is left."""
    servers = draw.servers
    for _ in range(TRIES):
        i = draw.index(rng)
        if i != other and servers[i] not in exclude:
            return i
    left = [s for i, s in enumerate(servers) if i != other and s not in exclude]
    if not left:
        return -1
    rest = WeightedDraw(tuple(left))
    return servers.index(rest.servers[rest.index(rng)])


def two_choices(
    draw: WeightedDraw, rng: random.Random, exclude: Collection[Server]
) -> tuple[Server | None, Server | None]:
    """Two distinct weighted random servers not in ``exclude`` (see the module docstring)."""
    servers = draw.servers
    if not exclude and len(servers) > 1:
        # draw.index and draw.other, inline (this runs per request); the second draw is
        # repeated while it hits the first, which is a weighted draw among the rest too
        cum, total, rnd = draw.cum, draw.total, rng.random
        i = bisect_right(cum, rnd() * total)
        for _ in range(TRIES):
            j = bisect_right(cum, rnd() * total)
            if j != i:
                return servers[i], servers[j]
        return servers[i], servers[draw.other(rng, i)]
    i = draw_avoiding(draw, rng, exclude)
    if i < 0:
        return None, None
    j = draw_avoiding(draw, rng, exclude, i)
    return servers[i], (servers[j] if j >= 0 else None)
