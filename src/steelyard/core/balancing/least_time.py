"""Least time: lowest expected completion time, from a decaying peak EWMA of latency.

Invariants:

- The returned server minimises ``cost · (active + 1) / weight`` over the usable,
  non-excluded servers; among equals the picks rotate.
- ``cost`` is the server's EWMA decayed toward zero by the time since its last
  sample (``ewma · exp(-age / τ)``), so a server that was slow and then got no
  traffic becomes cheap again and is re-probed, after about ``τ · ln(slow / fast)``.
- Pools of more than ``EXACT_LIMIT`` (100) usable servers score two weighted random servers and
  keep the better (``_large.two_choices``, O(log n); Finagle's and Linkerd's P2C over peak
  EWMA) instead of scanning them all; ties go to the first draw.
- ``pick`` only reads ``server.load``; ``on_done`` is the only writer of
  ``ewma`` and ``ewma_stamp``.
"""

from __future__ import annotations

from collections.abc import Collection
from math import exp
from typing import Any

from ..model import Server, ServerLoad
from ._large import EXACT_LIMIT, two_choices
from ._select import TieRotor, WeightedDraw, usable
from .base import Balancer, PickContext

#: Cost of a server that has no latency sample yet but already has a request in
#: flight. Larger than any real latency (seconds), so such a server gets one probe
#: at a time and is used beyond that only when every server is in the same state,
#: in which case the ``(active + 1)`` factor makes the choice least-connections.
UNMEASURED_BUSY = 1e6

#: The sample recorded for a failed request (at least; a slower failure counts its
#: real duration). A server that fails fast must not look fast.
FAILURE_SAMPLE = 1.0


def decayed(load: ServerLoad, now: float, tau: float) -> float:
    """The server's EWMA as seen at ``now``: decayed toward zero since the last sample."""
    age = now - load.ewma_stamp
    return load.ewma * exp(-age / tau) if age > 0.0 else load.ewma


class LeastTime(Balancer):
    """Least time (the idea of nginx Plus ``least_time``) scored with Finagle's peak
    EWMA (Twitter Finagle ``PeakEwma``; also Linkerd and Tower's ``PeakEwma``).

    Why a time-weighted EWMA and not a fixed alpha: a sample arriving Δt after the
    previous one gets weight ``1 - exp(-Δt/τ)`` (τ = ``options.ewma_decay``), so τ
    is a time window, independent of the request rate; a fixed alpha would forget
    in 20 requests on a busy server and over hours on an idle one. Why peak: a
    sample above the current cost replaces it at once, so a server that turns slow
    is avoided immediately, and its cost then decays back over τ.

    A server with no sample (ewma 0) costs 0 while idle, so a new server is tried
    at once, but ``UNMEASURED_BUSY`` while its first request is in flight, so a new
    server is not flooded before anything is known about it. A failure counts as
    a sample of at least ``FAILURE_SAMPLE`` seconds (peak rule applies).
    """

    name = "least_time"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rotor = TieRotor(usable(self.servers))
        self._tau = float(self.options.ewma_decay)
        if not self._tau > 0.0:
            raise ValueError(f"ewma_decay must be > 0 seconds, not {self._tau!r}")
        if self._rotor.n > EXACT_LIMIT:
            self._draw = WeightedDraw(self._rotor.ring[: self._rotor.n])
            self.pick = self._pick_sampled  # type: ignore[method-assign]

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        rotor = self._rotor
        ring = rotor.ring
        now = self.clock()
        tau = self._tau
        best = None
        at = 0
        best_score = 0.0
        for i in rotor.order():
            s = ring[i]
            if exclude and s in exclude:
                continue
            load = s.load
            if load.ewma:
                cost = decayed(load, now, tau)
            else:
                cost = UNMEASURED_BUSY if load.active else 0.0
            score = cost * (load.active + 1) / s.weight
            if best is None or score < best_score:
                best, at, best_score = s, i, score
                if not score:
                    break  # nothing scores below zero; the first one wins the tie
        if best is not None:
            rotor.won(at)
        return best

    def _pick_sampled(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        a, b = two_choices(self._draw, self.rng, exclude)
        if a is None or b is None:
            return a
        now = self.clock()
        tau = self._tau
        # score() twice, inline (this runs per request)
        la, lb = a.load, b.load
        ca = (
            (la.ewma * exp((la.ewma_stamp - now) / tau) if now > la.ewma_stamp else la.ewma)
            if la.ewma
            else (UNMEASURED_BUSY if la.active else 0.0)
        )
        cb = (
            (lb.ewma * exp((lb.ewma_stamp - now) / tau) if now > lb.ewma_stamp else lb.ewma)
            if lb.ewma
            else (UNMEASURED_BUSY if lb.active else 0.0)
        )
        return b if cb * (lb.active + 1) * a.weight < ca * (la.active + 1) * b.weight else a

    def score(self, s: Server, now: float) -> float:
        """What ``pick`` minimises for ``s`` (see the module docstring)."""
        load = s.load
        if load.ewma:
            cost = decayed(load, now, self._tau)
        else:
            cost = UNMEASURED_BUSY if load.active else 0.0
        return cost * (load.active + 1) / s.weight

    def on_done(self, server: Server, ok: bool, elapsed: float) -> None:
        load = server.load
        now = self.clock()
        sample = elapsed if ok else max(elapsed, FAILURE_SAMPLE)
        age = now - load.ewma_stamp
        keep = exp(-age / self._tau) if age > 0.0 else 1.0
        cost = load.ewma * keep  # == decayed(load, now, tau)
        # the old value keeps weight exp(-Δt/τ), the sample gets the rest
        load.ewma = sample if sample >= cost else cost + sample * (1.0 - keep)
        load.ewma_stamp = now
