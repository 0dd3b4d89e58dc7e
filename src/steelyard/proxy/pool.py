"""The data plane's view of one pool: the current snapshot plus per-server upstream state.

The control plane calls ``publish(servers)`` to swap in a new snapshot (one
reference assignment, with the new balancer's ``on_done`` hook set next to it);
requests already in flight keep the server objects (and the hook) they picked.
A connection pool is made for each server when it first appears in a published set,
and closed when it leaves (idle connections at once, busy ones as they finish).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..core.balancing import Balancer, BalancerOptions, resolve_algorithm
from ..core.model import PoolSnapshot, Server


class PoolRuntime:
    __slots__ = (
        "name",
        "algorithm",
        "options",
        "rng",
        "clock",
        "snapshot",
        "on_done",
        "upstreams",
        "make_upstream",
        "key_kind",
        "key_name",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        algorithm: str,
        options: BalancerOptions,
        servers: Sequence[Server],
        *,
        make_upstream: Callable[[Server], Any],
        rng: random.Random,
        clock: Callable[[], float],
        timeout: float,
    ) -> None:
        self.name = name
        self.algorithm = resolve_algorithm(algorithm)
        self.options = options
        self.rng = rng
        self.clock = clock
        self.make_upstream = make_upstream
        self.upstreams: dict[Server, Any] = {}
        self.timeout = timeout
        # What the data plane extracts from a request as the hash key.
        kind, _, arg = options.hash_on.partition(":")
        self.key_kind = kind if kind in ("header", "cookie", "uri") else None
        self.key_name = arg.lower().encode() if kind == "header" else arg.encode()
        self.publish(servers)

    def publish(self, servers: Sequence[Server]) -> None:
        """Swap in a snapshot of ``servers`` (the usable ones) with a fresh balancer."""
        balancer = self.algorithm(servers, rng=self.rng, clock=self.clock, options=self.options)
        for s in servers:
            if s not in self.upstreams:
                self.upstreams[s] = self.make_upstream(s)
        keep = set(servers)
        for s in [s for s in self.upstreams if s not in keep]:
            self.upstreams.pop(s).close()
        self.snapshot = PoolSnapshot(self.name, tuple(servers), balancer)
        # The data plane reads this with the snapshot (same loop, no await between the two
        # assignments, so never one without the other) and skips the call per request for
        # balancers that do not learn from completions (``on_done`` not overridden).
        learns = getattr(type(balancer), "on_done", Balancer.on_done) is not Balancer.on_done
        self.on_done = balancer.on_done if learns else None

    def pick(self, ctx: Any, ex: Any) -> Server | None:
        """The server for request ``ex`` (its hash key extracted when the pool hashes on one)."""
        ctx.key = ex.hash_key(self.key_kind, self.key_name) if self.key_kind is not None else None
        return self.snapshot.balancer.pick(ctx)

    def sweep(self, now: float) -> None:
        for up in self.upstreams.values():
            up.sweep(now)

    def close(self) -> None:
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
