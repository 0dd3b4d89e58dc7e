"""Hash-table balancers (``ip_hash``, ``consistent_hash``) at scale, for ``PoolRuntime.publish``.

A Maglev table has ≥ 100 slots per server and fills in pure Python at about 2 µs per slot:
2 ms for pools of up to 50 servers, 50–300 ms for 100, 1.5–4 s for 1,000–10,000. So:

- A publish whose usable servers the current table already holds (a server went down, came
  back, was drained) builds no table: the balancer is ``narrowed`` from the last full build,
  which only passes over the slots of the servers left out (their keys, and only theirs, move).
- A publish that needs a new table (a server added, a weight changed) of more than
  ``INLINE_SLOTS`` slots, with a loop running and a previous table, builds it in a thread
  (the default executor). Meanwhile the pool serves from the previous table narrowed to the
  servers it has (``partial``: the new servers get no hashed traffic until the table is ready),
  and when it is, the pool's last publish is repeated with it. One build per pool at a time;
  a build whose result no longer covers the servers then wanted is followed by another.
- Otherwise (start-up, small tables, no loop) the table is built in line, as before. A reload's
  new pool ``adopt``s the old pool's table first, so a reload is not a start-up here.

The thread only reads names and weights (immutable) and returns a new list; the GIL is
released to the event loop every ``sys.getswitchinterval()`` (5 ms), so a build slows
serving for its duration but never stalls it for longer than that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..core.balancing._select import usable
from ..core.balancing.base import Balancer
from ..core.balancing.consistent_hash import ConsistentHash, build_table
from ..core.hashing import maglev_size
from ..core.model import Server

log = logging.getLogger("steelyard")

#: Tables of up to this many slots (pools of up to 50 servers) are built in line (~2 ms).
INLINE_SLOTS = 5003


class HashTables:
    """The table-building side of one pool's hashing balancer (see the module docstring)."""

    __slots__ = ("built", "building", "closed", "kwargs", "republish")

    def __init__(self, kwargs: dict[str, Any], republish: Callable[[], None]) -> None:
        self.kwargs = kwargs  # rng, clock, options: what every balancer of the pool is built with
        self.republish = republish  # the pool's last publish again
        self.built: ConsistentHash | None = None  # balancer of the last full build
        self.building = False
        self.closed = False

    def adopt(self, other: HashTables) -> None:
        """Start from ``other``'s last full table (a reload's new pool of the same name): the new
        pool's first publish then narrows it or builds off the loop, instead of in line."""
        if other.built is not None and other.kwargs == self.kwargs:
            self.built = other.built

    def balancer(self, cls: type[ConsistentHash], servers: Sequence[Server], current: Any) -> Balancer:
        bases = [b for b in (self.built, current) if b is not None and type(b) is cls]
        for base in bases:
            narrowed = base.narrowed(servers)
            if narrowed is not None:
                return narrowed
        if bases and maglev_size(len(usable(servers))) > INLINE_SLOTS:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            interim = bases[-1].narrowed(servers, partial=True) if loop is not None else None
            if loop is not None and interim is not None:
                if not self.building:
                    self._start(loop, cls, tuple(servers))
                return interim
        built = cls(servers, **self.kwargs)
        self.built = built
        return built

    def _start(self, loop: asyncio.AbstractEventLoop, cls: type[ConsistentHash], servers: tuple[Server, ...]) -> None:
        self.building = True
        future = loop.run_in_executor(None, build_table, servers)

        def done(fut: asyncio.Future[Any]) -> None:
            self.building = False
            if self.closed or fut.cancelled():
                return
            if fut.exception() is not None:
                log.error("building the hash table of %d servers failed: %r", len(servers), fut.exception())
                return
            self.built = cls(servers, table=fut.result(), **self.kwargs)
            self.republish()

        future.add_done_callback(done)
