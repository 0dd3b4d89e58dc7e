"""Slow start: a server that just became usable takes a share that ramps up linearly.

``SlowStart`` wraps any balancer while some server is inside its window (the control
plane publishes the bare balancer again once every window is over, so steady state
costs nothing). Its effective weight is ``weight × f`` with
``f = floor + (1 − floor) × elapsed / window``, applied as an admission probability:
when the inner balancer picks a ramping server, the pick stands with probability ``f``;
otherwise the balancer is asked again without it (and the ramping server is used only
if nothing else is left). That works the same for round robin, weighted, least_conn and
least_time, and for users' own algorithms, without touching their state; HAProxy's
``slowstart`` and Envoy's slow start mode ramp the same quantity.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from .balancing.base import Balancer, PickContext
from .model import Server

if TYPE_CHECKING:
    import random  # (the rng is injected; only its type is named here)


class SlowStart:
    __slots__ = ("inner", "since", "window", "floor", "clock", "rng", "on_done")

    def __init__(
        self,
        inner: Balancer,
        since: dict[Server, float],
        *,
        window: float,
        floor: float,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.inner = inner
        self.since = since  # ramping server -> when it became usable
        self.window, self.floor = window, floor
        self.clock, self.rng = clock, rng
        self.on_done = inner.on_done

    def factor(self, server: Server, now: float) -> float:
        start = self.since.get(server)
        if start is None:
            return 1.0
        return min(1.0, self.floor + (1.0 - self.floor) * max(0.0, now - start) / self.window)

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        server = self.inner.pick(ctx, exclude)
        if server is None or server not in self.since:
            return server
        if self.rng.random() < self.factor(server, self.clock()):
            return server
        other = self.inner.pick(ctx, {*exclude, server})
        return server if other is None else other
