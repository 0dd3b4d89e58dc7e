"""Plain round robin.

Invariants: weights are ignored except that weight 0 servers are never picked; with
nothing excluded, n consecutive picks return each of the n usable servers once.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..model import Server
from ._select import TieRotor, usable
from .base import Balancer, PickContext


class RoundRobin(Balancer):
    """Round robin: strict rotation over the usable servers (classic; nginx/HAProxy
    ``roundrobin`` with equal weights).

    An excluded server is skipped and the rotation continues after the server
    actually returned, so a retry does not shift the order for other requests more
    than one step.
    """

    name = "round_robin"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rotor = TieRotor(usable(self.servers))

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        rotor = self._rotor
        ring = rotor.ring
        if not exclude:
            if not rotor.n:
                return None
            i = rotor.start
            j = i + 1  # (what rotor.won(i) does, inline: this runs per request)
            rotor.start = j if j < rotor.n else j - rotor.n
            return ring[i]
        for i in rotor.order():
            if ring[i] not in exclude:
                rotor.won(i)
                return ring[i]
        return None
