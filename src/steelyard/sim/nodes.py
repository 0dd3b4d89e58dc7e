"""Simulated balancer nodes and the load each one sees.

A node is what one steelyard process would be: a ``Balancer`` from ``core`` (built
through ``resolve_algorithm``, used unchanged through its interface) over ``Server``
objects of its own. What ``server.load.active`` holds on those objects is the
node's *view* of the load; the engine keeps the truth in its own counters.

Views (``BalancerSpec``):

- ``refresh == 0``: current information. Every node shares one set of ``Server``
  objects whose ``load.active`` is the true number of requests at each server (in
  service + waiting), kept by the engine as the data plane keeps it: +1 when a
  request is sent, -1 when it ends.
- ``refresh > 0``: each node has its own objects. Every ``refresh`` seconds a
  snapshot of the true counts is taken; it reaches the nodes ``delay`` later. On
  arrival a node sets ``active = snapshot + (own in flight now - own in flight at the
  snapshot)`` when ``own`` (it knows its own requests exactly; the others' only as of
  the snapshot), or just the snapshot when not (Mitzenmacher's "bulletin board":
  "How Useful Is Old Information?", IEEE TPDS 11(1), 2000).

Invariant: a node's view of a server never goes below zero, since its own requests
that end after a snapshot were counted in it or sent after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ..core.balancing import Balancer, BalancerOptions
from ..core.model import Server


class Node:
    """One balancer node: its ``Server`` objects, its balancer and its own in-flight counts."""

    __slots__ = (
        "servers",
        "index",
        "balancer",
        "learns",
        "bump",
        "track",
        "own_inflight",
        "_cls",
        "_rng",
        "_clock",
        "_options",
    )

    def __init__(
        self,
        cls: type[Balancer],
        servers: Sequence[Server],
        *,
        shared: bool,
        own: bool,
        rng: random.Random,
        clock: Callable[[], float],
        options: BalancerOptions,
    ) -> None:
        self.servers = tuple(servers)
        self.index = {s: i for i, s in enumerate(self.servers)}  # Server hashes by identity
        self._cls, self._rng, self._clock, self._options = cls, rng, clock, options
        self.balancer = cls(self.servers, rng=rng, clock=clock, options=options)
        # like PoolRuntime.publish: balancers that do not learn from completions are not told
        self.learns = type(self.balancer).on_done is not Balancer.on_done
        self.bump = shared or own  # the engine moves load.active of this node's objects per request
        self.track = own and not shared  # own in-flight counts are needed for snapshots
        self.own_inflight = [0] * len(self.servers)

    def publish(self, healthy: Sequence[bool]) -> None:
        """A new balancer over the servers health checks consider up (load records survive)."""
        usable = [s for s, ok in zip(self.servers, healthy) if ok]
        self.balancer = self._cls(usable, rng=self._rng, clock=self._clock, options=self._options)

    def apply(self, counts: Sequence[int], own_at_snapshot: Sequence[int] | None) -> None:
        """Take a snapshot of the true counts (and of this node's own in-flight counts then)."""
        if own_at_snapshot is None:
            for s, c in zip(self.servers, counts):
                s.load.active = c
        else:
            for s, c, now, then in zip(self.servers, counts, self.own_inflight, own_at_snapshot):
                s.load.active = c + now - then


def make_nodes(
    cls: type[Balancer],
    names: Sequence[str],
    weights: Sequence[int],
    *,
    count: int,
    shared: bool,
    own: bool,
    seed: int,
    clock: Callable[[], float],
    options: BalancerOptions,
) -> list[Node]:
    """``count`` nodes, each with its own rng (seeded from ``seed``) and, unless shared, its own servers."""

    def servers() -> list[Server]:
        return [Server(name, "sim", i, w) for i, (name, w) in enumerate(zip(names, weights))]

    common = servers() if shared else None
    return [
        Node(
            cls,
            common or servers(),
            shared=shared,
            own=own,
            rng=random.Random(f"{seed}/node/{k}"),
            clock=clock,
            options=options,
        )
        for k in range(count)
    ]
