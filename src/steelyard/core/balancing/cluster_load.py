"""Cluster-wide least connections and least time: the same algorithms scored on the cluster's
load (this balancer's exact in-flight count plus the other balancers' recently published sum).

Invariants:
- Only clustered pools use these (``CLUSTER_VARIANTS`` maps a plain class to its cluster twin,
  applied when a snapshot is published), so a lone balancer's per-pick cost is unchanged.
- ``ClusterLeastConn`` minimises ``(active + remote) / weight``; ties rotate.
- ``ClusterLeastTime`` minimises ``cost · (active + remote + 1) / weight`` where ``cost`` is the
  local cost (``least_time.cost_at``) when this node has measured the server, else the other nodes' mean EWMA
  (``remote_ewma``), else ``UNMEASURED_BUSY`` only while *this* node has a request in flight.
  Guard: a server this node never measured is never priced out by other nodes' load alone
  (otherwise a server busy elsewhere but unmeasured here would score ~1e6·remote and never be
  tried: least_time collapses onto the other servers).
- Pools of more than ``EXACT_LIMIT`` servers use the plain classes' two-choice picks with
  these scores (``_large``): only two servers' loads are read per pick.
- ``remote`` and ``remote_ewma`` are written only by the control plane's load exchange.
"""

from __future__ import annotations

from collections.abc import Collection

from ..model import Server
from ._large import two_choices
from .base import PickContext
from .least_conn import LeastConn
from .least_time import UNMEASURED_BUSY, LeastTime, cost_at


class ClusterLeastConn(LeastConn):
    """Weighted least connections over the whole cluster's in-flight requests."""

    name = "least_conn"

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
            load = s.load
            active = load.active + load.remote
            if best is None or active * best_weight < best_active * s.weight:
                best, at, best_active, best_weight = s, i, active, s.weight
                if not active:
                    break
        if best is not None:
            rotor.won(at)
        return best

    def _pick_sampled(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        a, b = two_choices(self._draw, self.rng, exclude)
        if a is None or b is None:
            return a
        la, lb = a.load, b.load
        return b if (lb.active + lb.remote) * a.weight < (la.active + la.remote) * b.weight else a


class ClusterLeastTime(LeastTime):
    """Least time over the whole cluster's in-flight requests (see the module docstring)."""

    name = "least_time"

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
            elif load.remote_ewma:
                cost = load.remote_ewma
            else:
                cost = UNMEASURED_BUSY if load.active else 0.0
            score = cost * (load.active + load.remote + 1) / s.weight
            if best is None or score < best_score:
                best, at, best_score = s, i, score
                if not score:
                    break
        if best is not None:
            rotor.won(at)
        return best

    def _pick_sampled(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        a, b = two_choices(self._draw, self.rng, exclude)
        if a is None or b is None:
            return a
        now = self.clock()
        return b if self.score(b, now) < self.score(a, now) else a

    def score(self, s: Server, now: float) -> float:
        load = s.load
        if load.ewma or load.peak:
            cost = cost_at(load, now, self._tau, self._tau_peak)
        elif load.remote_ewma:
            cost = load.remote_ewma
        else:
            cost = UNMEASURED_BUSY if load.active else 0.0
        return cost * (load.active + load.remote + 1) / s.weight


CLUSTER_VARIANTS: dict[type, type] = {LeastConn: ClusterLeastConn, LeastTime: ClusterLeastTime}
