"""The data plane's view of one pool: the current snapshot plus per-server upstream state.

The control plane calls ``publish(servers)`` to swap in a new snapshot (one
reference assignment); requests already in flight keep the server objects they
picked. Per-server connection pools are created lazily for new servers and closed
when a server leaves the pool.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..core.balancing import BalancerOptions, resolve_algorithm
from ..core.model import PoolSnapshot, Server


class PoolRuntime:
    __slots__ = (
        "name",
        "algorithm",
        "options",
        "rng",
        "clock",
        "snapshot",
        "upstreams",
        "make_upstream",
        "key_kind",
        "key_name",
        "connect_timeout",
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
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self.name = name
        self.algorithm = resolve_algorithm(algorithm)
        self.options = options
        self.rng = rng
        self.clock = clock
        self.make_upstream = make_upstream
        self.upstreams: dict[Server, Any] = {}
        self.connect_timeout = connect_timeout
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

    def sweep(self, now: float) -> None:
        for up in self.upstreams.values():
            up.sweep(now)

    def close(self) -> None:
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
