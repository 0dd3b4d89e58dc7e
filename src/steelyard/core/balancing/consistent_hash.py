"""Consistent hashing on the request's hash key (Maglev), with optional bounded loads.

Invariants:

- Without a balance factor, a key maps to the same server for as long as the set of
  usable servers (names and weights) is the same, whatever their order and however
  often the balancer is rebuilt; removing one of N servers remaps ≈ 1/N of the keys.
- With a balance factor c > 1, a server is returned only if, counting this request,
  its in-flight load stays within ``ceil(c · (A + 1) · w / Σw)`` where A is the
  total in flight over the pool. Such a server always exists unless servers are
  excluded; then the bound is dropped rather than failing the request.
- An excluded server is never returned; its keys go to each key's *next* server,
  the same one every time.
"""

from __future__ import annotations

from collections.abc import Collection
from math import ceil
from typing import Any

from ..hashing import Maglev, hash64
from ..model import Server
from ._select import usable
from .base import Balancer, PickContext


class ConsistentHash(Balancer):
    """Maglev consistent hashing on ``ctx.key`` (falling back to ``ctx.client_ip``).

    Lookup table: Eisenbud et al., "Maglev: A Fast and Reliable Software Network
    Load Balancer", NSDI 2016 (see ``steelyard.core.hashing``). Bounded loads:
    Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
    SODA 2018 — a key whose server is full moves on to its next server in probe
    order, so a hot key spills over to a stable sequence of servers instead of
    overloading one. The capacity is weighted (share ``w / Σw`` of ``c · (A+1)``).
    """

    name = "consistent_hash"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        servers = usable(self.servers)
        self._servers = servers
        self._table = Maglev(servers, [s.name for s in servers], [s.weight for s in servers])
        factor = self.options.hash_balance_factor
        if factor is not None and not factor > 1.0:
            raise ValueError(f"hash_balance_factor must be > 1, not {factor!r}")
        self._factor = factor
        total_weight = sum(s.weight for s in servers)
        # capacity of s = ceil(self._unit · (A + 1) · s.weight)
        self._unit = factor / total_weight if factor and total_weight else 0.0

    def key_of(self, ctx: PickContext) -> str:
        """The text this balancer hashes for a request."""
        return ctx.key or ctx.client_ip

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        h = hash64(self.key_of(ctx))
        table = self._table
        if self._factor is not None:
            return self._pick_bounded(h, exclude)
        if not exclude:
            return table.lookup(h)
        return table.first(h, lambda s: s not in exclude)

    def _pick_bounded(self, h: int, exclude: Collection[Server]) -> Server | None:
        in_flight = 0
        for s in self._servers:
            in_flight += s.load.active
        unit = self._unit * (in_flight + 1)
        table = self._table
        home = table.lookup(h)
        # active + 1 <= ceil(x)  <=>  active < ceil(x), for an integer active
        if home is None or (home.load.active < ceil(unit * home.weight) and not (exclude and home in exclude)):
            return home

        def fits(s: Server) -> bool:
            return s.load.active < ceil(unit * s.weight) and not (exclude and s in exclude)

        found = table.first(h, fits)
        if found is None and exclude:
            found = table.first(h, lambda s: s not in exclude)
        return found
