"""Least time: lowest expected completion time, from a decaying EWMA of latency and a
short-lived peak.

Invariants:

- The returned server minimises ``cost · (active + 1) / weight`` over the usable,
  non-excluded servers; among equals the picks rotate.
- ``cost`` (``cost_at``) is the larger of two estimates, each decayed toward zero by the time
  since it was set: the EWMA of the server's response times (time constant τ, so a server that
  was slow and then got no traffic becomes cheap again and is re-probed, after about
  ``τ · ln(slow / fast)``), and the peak, the last sample that rose above the cost (time
  constant τ/10). A server turning slow is avoided at once (its samples keep the peak up);
  one slow response (a pause, a cold cache) is forgotten in about ``τ/10 · ln(spike / other)``.
- A server's first sample sets only the peak: it includes the connection's set-up and a cold
  start, so it must not become the server's average (a server added at runtime would otherwise be
  starved for ~τ·ln(first / other) seconds by one slow first answer).
- Pools of more than ``EXACT_LIMIT`` (100) usable servers score two weighted random servers and
  keep the better (``_large.two_choices``, O(log n); Finagle's and Linkerd's P2C over peak
  EWMA) instead of scanning them all; ties go to the first draw.
- ``pick`` only reads ``server.load``; ``on_done`` is the only writer of ``ewma``, ``ewma_stamp``,
  ``peak`` and ``peak_stamp``.
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

#: The peak's time constant, as a share of the EWMA's (``ewma_decay``).
PEAK_SHARE = 0.1


def cost_at(load: ServerLoad, now: float, tau: float, tau_peak: float) -> float:
    """The server's expected response time at ``now`` (see the module docstring); 0 when it
    has no sample yet."""
    ewma = load.ewma
    cost = 0.0
    if ewma:
        age = now - load.ewma_stamp
        cost = ewma * exp(-age / tau) if age > 0.0 else ewma
    peak = load.peak
    if peak:
        age = now - load.peak_stamp
        if age > 0.0:
            peak *= exp(-age / tau_peak)
        if peak > cost:
            return peak
    return cost


class LeastTime(Balancer):
    """Least time (the idea of nginx Plus ``least_time``) scored with Finagle's peak
    EWMA (Twitter Finagle ``PeakEwma``; also Linkerd and Tower's ``PeakEwma``).

    Why a time-weighted EWMA and not a fixed alpha: a sample arriving Δt after the
    previous one gets weight ``1 - exp(-Δt/τ)`` (τ = ``options.ewma_decay``), so τ
    is a time window, independent of the request rate; a fixed alpha would forget
    in 20 requests on a busy server and over hours on an idle one. Why peak: a
    sample above the current cost replaces it at once, so a server that turns slow
    is avoided immediately, and its cost then decays back over τ.

    A server with no sample costs 0 while idle, so a new server is tried at once, but
    ``UNMEASURED_BUSY`` while its first request is in flight, so a new server is not flooded
    before anything is known about it. A failure counts as a sample of at least
    ``FAILURE_SAMPLE`` seconds.
    """

    name = "least_time"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rotor = TieRotor(usable(self.servers))
        self._tau = float(self.options.ewma_decay)
        if not self._tau > 0.0:
            raise ValueError(f"ewma_decay must be > 0 seconds, not {self._tau!r}")
        self._tau_peak = self._tau * PEAK_SHARE
        if self._rotor.n > EXACT_LIMIT:
            self._draw = WeightedDraw(self._rotor.ring[: self._rotor.n])
            self.pick = self._pick_sampled  # type: ignore[method-assign]

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        rotor = self._rotor
        ring = rotor.ring
        now = self.clock()
        tau, tau_peak = self._tau, self._tau_peak
        best = None
        at = 0
        best_score = 0.0
        for i in rotor.order():
            s = ring[i]
            if exclude and s in exclude:
                continue
            load = s.load
            if load.ewma or load.peak:
                cost = cost_at(load, now, tau, tau_peak)
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
        tau, tau_peak = self._tau, self._tau_peak
        la, lb = a.load, b.load
        ca = cost_at(la, now, tau, tau_peak) if la.ewma or la.peak else (UNMEASURED_BUSY if la.active else 0.0)
        cb = cost_at(lb, now, tau, tau_peak) if lb.ewma or lb.peak else (UNMEASURED_BUSY if lb.active else 0.0)
        return b if cb * (lb.active + 1) * a.weight < ca * (la.active + 1) * b.weight else a

    def score(self, s: Server, now: float) -> float:
        """What ``pick`` minimises for ``s`` (see the module docstring)."""
        load = s.load
        if load.ewma or load.peak:
            cost = cost_at(load, now, self._tau, self._tau_peak)
        else:
            cost = UNMEASURED_BUSY if load.active else 0.0
        return cost * (load.active + 1) / s.weight

    def on_done(self, server: Server, ok: bool, elapsed: float) -> None:
        load = server.load
        now = self.clock()
        sample = elapsed if ok else max(elapsed, FAILURE_SAMPLE)
        first = not load.peak_stamp
        if first or sample >= cost_at(load, now, self._tau, self._tau_peak):
            load.peak, load.peak_stamp = sample, now
        if first:
            return  # (connection set-up and a cold start: not the server's average)
        if not load.ewma:
            load.ewma, load.ewma_stamp = sample, now
            return
        # time-weighted: the old value keeps weight exp(-Δt/τ), the sample gets the rest
        age = now - load.ewma_stamp
        keep = exp(-age / self._tau) if age > 0.0 else 1.0
        load.ewma = load.ewma * keep + sample * (1.0 - keep)
        load.ewma_stamp = now
