"""Simulated balancer nodes, the load each one sees, and the leases of its requests.

A node is what one steelyard process would be: a ``Balancer`` from ``core`` (built
through ``resolve_algorithm``, used unchanged through its interface) over ``Server``
objects of its own. What ``server.load.active`` holds on those objects is the
node's *view* of the load; the engine keeps the truth in its own counters.

Every simulated request is a ``Request``: a ``proxy.lease.Lease`` on the server it was
sent to, taken and settled as the data plane takes and settles an HTTP exchange's
(in-flight count, the outcome and the balancer's ``on_done``, passive-health streaks).
The node plays the pool's part for its leases: ``on_done`` is its balancer's hook when
the balancer learns from completions, else None (as ``PoolRuntime.publish`` sets it),
nobody waits in its queue, and passive health is off (nothing is ejected: failures are
the scenario's, noticed by its health checks).

Views (``BalancerSpec``):

- ``refresh == 0``: current information. Every node shares one set of ``Server``
  objects whose ``load.active`` is the true number of requests at each server (in
  service + waiting): the leases of every node's requests hold them, +1 when a
  request is sent, -1 when it ends.
- ``refresh > 0``: each node has its own objects. Every ``refresh`` seconds a
  snapshot of the true counts is taken; it reaches the nodes ``delay`` later. On
  arrival a node sees ``active = snapshot + (own in flight now - own in flight at the
  snapshot)`` when ``own`` (it knows its own requests exactly: its leases hold the
  objects its balancer sees; the others' only as of the snapshot), or just the snapshot
  when not (Mitzenmacher's "bulletin board": "How Useful Is Old Information?", IEEE
  TPDS 11(1), 2000). A bulletin-board node's leases hold ``Server`` objects of its own
  that its balancer never sees (the in-flight count the data plane keeps, unread);
  what the balancer learns from their outcomes goes to the objects it sees.

``held[i]`` is the object a node's leases on server ``i`` hold: ``servers[i]``, or the
unseen one of a bulletin board.

Invariant: a node's view of a server never goes below zero, since its own requests
that end after a snapshot were counted in it or sent after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ..core.balancing import Balancer, BalancerOptions
from ..core.model import Server
from ..proxy.lease import Lease


class Request(Lease):
    """One simulated request: the lease on its server (``take(node, node.held[i], now)``, its
    node as the pool; ended with ``settle``), its work at that server (seconds of service) and
    whether it is measured. It has no answer head, status or bytes: the lease reads zeros. The
    engine reuses one that ended for a later request (``take`` starts a lease afresh)."""

    __slots__ = ("work", "measured")

    def __init__(self, work: float, measured: bool) -> None:
        # the lease's fields that ``settle`` reads; ``take`` sets the others
        self.t_head = 0.0
        self.status = 0
        self.resp_bytes = 0
        self.work = work
        self.measured = measured


class Node:
    """One balancer node: its ``Server`` objects, its balancer and its own in-flight counts;
    for its requests' leases, it plays the pool's part (see the module docstring)."""

    __slots__ = (
        "servers",
        "index",
        "held",
        "balancer",
        "on_done",
        "waiting",
        "eject_after",
        "eject_5xx",
        "track",
        "own_inflight",
        "_view",
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
        if shared or own:  # its view counts its own requests: its leases hold what it sees
            self.held = self.servers
            self._view: dict[Server, Server] | None = None
        else:  # a bulletin board: its leases hold objects its balancer never sees
            self.held = tuple(Server(s.name, s.host, s.port, s.weight) for s in self.servers)
            self._view = dict(zip(self.held, self.servers))
        self.track = own and not shared  # own in-flight counts are needed for snapshots
        self.own_inflight = [0] * len(self.servers)
        self.waiting: tuple[()] = ()  # (what a lease reads of a pool: nobody waits here,
        self.eject_after = self.eject_5xx = 0  # and passive health is off)
        self.on_done: Callable[[Server, bool, float], None] | None = None
        self._use(cls(self.servers, rng=rng, clock=clock, options=options))

    def _use(self, balancer: Balancer) -> None:
        # like PoolRuntime.publish: balancers that do not learn from completions are not told
        self.balancer = balancer
        if type(balancer).on_done is Balancer.on_done:
            self.on_done = None
        elif self._view is None:
            self.on_done = balancer.on_done
        else:
            hook, view = balancer.on_done, self._view
            self.on_done = lambda server, ok, elapsed: hook(view[server], ok, elapsed)

    def publish(self, healthy: Sequence[bool]) -> None:
        """A new balancer over the servers health checks consider up (load records survive)."""
        usable = [s for s, ok in zip(self.servers, healthy) if ok]
        self._use(self._cls(usable, rng=self._rng, clock=self._clock, options=self._options))

    def failing(self, server: Server, why: str) -> None:
        """(Never called: passive health is off.)"""

    def wake(self) -> None:
        """(Never called: nobody waits.)"""

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
