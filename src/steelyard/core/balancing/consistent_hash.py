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
- ``narrowed(servers)`` serves a subset of this balancer's servers from the same table
  (no rebuild: a server going down or coming back costs O(n) set work, not a Maglev fill);
  a key of a left-out server goes to its next server, exactly as if it were excluded, and
  every other key stays. A pool that needs servers the table lacks must build a new one.
- With a balance factor and more than ``SCAN_LIMIT`` servers, the pool's total in flight
  is summed at most once per ``LOAD_REFRESH`` seconds rather than per pick (the bound uses
  a total up to that old).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from math import ceil
from typing import Any

from ..hashing import Maglev, hash64
from ..model import Server
from ._large import SCAN_LIMIT
from ._select import usable
from .base import Balancer, PickContext

#: Seconds a large bounded-load pool reuses its sum of in-flight requests (see above).
LOAD_REFRESH = 0.005


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

    def __init__(self, *args: Any, table: Maglev[Server] | None = None, **kwargs: Any) -> None:
        """``table``: a table already built over exactly these servers (``build_table``,
        or a ``restricted`` one), instead of building it here."""
        super().__init__(*args, **kwargs)
        servers = usable(self.servers)
        self._servers = servers
        self._table = build_table(servers) if table is None else table
        if self._table.dead:
            self.pick = self._pick_skipping  # type: ignore[method-assign]
        self._in_flight = 0  # (large bounded pools: the last sum, and when it was taken)
        self._summed_at = float("-inf")
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

    def _pick_skipping(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        """``pick`` of a narrowed balancer: slots of left-out servers are passed over."""
        h = hash64(self.key_of(ctx))
        if self._factor is not None:
            return self._pick_bounded(h, exclude)
        table = self._table
        if not exclude:
            home = table.lookup(h)
            return home if home not in table.dead else table.first(h, _anything)
        return table.first(h, lambda s: s not in exclude)

    def narrowed(self, servers: Sequence[Server], partial: bool = False) -> ConsistentHash | None:
        """This balancer over ``servers`` without building a table (see the module docstring);
        ``None`` when some usable server of ``servers`` owns no slot of the table. ``partial``:
        leave such servers out instead (until a new table is ready), ``None`` only when none
        of ``servers`` is in the table."""
        table = self._table.restricted(usable(servers), partial)
        if table is None:
            return None
        kept = set(table.items)
        return type(self)(
            [s for s in servers if s in kept],
            rng=self.rng,
            clock=self.clock,
            options=self.options,
            table=table,
        )

    def _total_in_flight(self) -> int:
        servers = self._servers
        if len(servers) > SCAN_LIMIT:
            now = self.clock()
            if now - self._summed_at < LOAD_REFRESH:
                return self._in_flight
            self._summed_at = now
        in_flight = 0
        for s in servers:
            in_flight += s.load.active
        self._in_flight = in_flight
        return in_flight

    def _pick_bounded(self, h: int, exclude: Collection[Server]) -> Server | None:
        in_flight = self._total_in_flight()
        unit = self._unit * (in_flight + 1)
        table = self._table
        home = table.lookup(h)
        if home is not None and table.dead and home in table.dead:
            home = table.first(h, _anything)
        # active + 1 <= ceil(x)  <=>  active < ceil(x), for an integer active
        if home is None or (home.load.active < ceil(unit * home.weight) and not (exclude and home in exclude)):
            return home

        def fits(s: Server) -> bool:
            return s.load.active < ceil(unit * s.weight) and not (exclude and s in exclude)

        found = table.first(h, fits)
        if found is None and exclude:
            found = table.first(h, lambda s: s not in exclude)
        return found


def build_table(servers: Sequence[Server]) -> Maglev[Server]:
    """The Maglev table of the usable ones of ``servers`` (pure; safe to run in a thread)."""
    servers = usable(servers)
    return Maglev(servers, [s.name for s in servers], [s.weight for s in servers])


def _anything(server: Server) -> bool:
    return True
