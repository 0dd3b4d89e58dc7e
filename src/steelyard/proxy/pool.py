"""The data plane's view of one pool: the current snapshot plus per-server upstream state.

The control plane calls ``publish(servers)`` to swap in a new snapshot (one
reference assignment, with the new balancer's ``on_done`` hook set next to it);
requests already in flight keep the server objects (and the hook) they picked.
A connection pool is made for each server when it first appears in a published set,
and closed when it leaves (idle connections at once, busy ones as they finish).

Also here, because they are per pool and read on the request path:
- ``pick`` honours servers' ``max_conns``: a full server is skipped; when every one is
  full, ``FULL`` is returned and the request (or L4 connection) waits in ``waiting`` (FIFO,
  at most ``max_queue``, each for at most ``queue_timeout``) until a lease of this pool ends
  (``proxy.lease``: what waits is a ``Waiter``).
- The retry budget: retries in the current one-second window may not exceed
  ``retry_budget`` × the requests completed in the previous one (with a floor of
  ``MIN_RETRIES``), so a failing pool is not hit by a retry storm.
- Passive health: ``failing(server, why)`` is how the data plane reports a server whose
  consecutive failures crossed ``eject_after`` (or ``eject_5xx``); the control plane
  decides whether to eject it.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ..core.balancing import Balancer, BalancerOptions, resolve_algorithm
from ..core.balancing.consistent_hash import ConsistentHash
from ..core.model import PoolSnapshot, Server
from ..core.slow_start import SlowStart
from .tables import HashTables

if TYPE_CHECKING:
    from .lease import Waiter

FULL = Server("(every server is full)", "", 0)  # pick()'s answer when only full servers are left
MIN_RETRIES = 10  # retries a budget always allows per second
_MAX_CONNS = attrgetter("max_conns")


class PoolRuntime:
    __slots__ = (
        "name", "algorithm", "options", "rng", "clock", "snapshot", "inner", "on_done", "upstreams",
        "make_upstream", "key_kind", "key_name", "timeout", "limited", "waiting", "max_queue",
        "queue_timeout", "retries", "retry_budget", "retry_header", "retried", "budget", "window_start",
        "completed", "eject_after", "eject_5xx", "on_failing", "known", "retried_total", "answered", "sticky",
        "draining", "variants", "tables", "published", "successor",
    )  # fmt: skip

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
        retries: int = 0,
        retry_budget: float = 0.2,
        retry_header: bool = False,
        max_queue: int = 0,
        queue_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.algorithm = resolve_algorithm(algorithm)
        # class -> the class to build instead (a clustered pool: the cluster-wide least_conn /
        # least_time, ``core.balancing.cluster_load``); chosen here, once per publish, not per pick
        self.variants: dict[type, type] = {}
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
        self.waiting: deque[tuple[Waiter, float]] = deque()  # (what waits for a server, since when)
        self.max_queue, self.queue_timeout = max_queue, queue_timeout
        self.retries, self.retry_budget, self.retry_header = retries, retry_budget, retry_header
        self.retried = 0  # retries in the current window
        self.retried_total = 0  # retries since start (metrics)
        self.answered: Counter[int] = Counter()  # error responses steelyard wrote itself, by status (metrics)
        self.budget = float(MIN_RETRIES)  # retries allowed in it
        self.window_start = clock()
        self.completed = 0  # requests completed up to the window's start (sum over servers)
        self.eject_after = self.eject_5xx = 0  # passive health thresholds; 0: off
        self.on_failing: Callable[[Server, str], None] | None = None
        self.known: set[Server] = set()  # every server ever published (their counters make the budget)
        self.sticky: Any = None  # proxy.sticky.Sticky for pools with [pool.sticky]; None: plain picks
        self.draining: dict[str, tuple[Server, float]] = {}  # draining servers sticky clients may still use
        # hashing pools: tables reused, or built off the loop (``proxy.tables``)
        self.tables = HashTables({"rng": rng, "clock": clock, "options": options}, self._republish)
        self.published: tuple[Any, ...] = ()  # the last publish's arguments
        self.successor: PoolRuntime | None = None  # the pool of the same name a reload put in its place
        self.publish(servers)

    def publish(
        self,
        servers: Sequence[Server],
        ramping: dict[Server, float] | None = None,
        window: float = 0.0,
        floor: float = 1.0,
        draining: dict[str, tuple[Server, float]] | None = None,
    ) -> None:
        """Swap in a snapshot of ``servers`` (the usable ones) with a fresh balancer; servers
        in ``ramping`` (server -> when it became usable) are in slow start over ``window``.
        ``draining`` (name -> (server, drain start)): servers no new client gets that sticky
        clients may still reach (their connection pools stay)."""
        cls: type[Balancer] = self.variants.get(self.algorithm, self.algorithm)
        self.published = (servers, ramping, window, floor, draining)
        if issubclass(cls, ConsistentHash):
            balancer = self.tables.balancer(cls, servers, getattr(self, "inner", None))
        else:
            balancer = cls(servers, rng=self.rng, clock=self.clock, options=self.options)
        self.draining = draining or {}
        extra = [d[0] for d in self.draining.values()]
        upstreams = self.upstreams
        keep = set(servers).union(extra)
        # (set operations first: with 10,000 servers a publish usually adds or removes none)
        if not keep <= upstreams.keys():
            for s in (*servers, *extra):
                if s not in upstreams:
                    upstreams[s] = self.make_upstream(s)
        self.known |= keep
        if len(upstreams) > len(keep):
            for s in [s for s in upstreams if s not in keep]:
                upstreams.pop(s).close()
        self.inner = balancer
        picker: Any = balancer
        if ramping:
            picker = SlowStart(balancer, ramping, window=window, floor=floor, clock=self.clock, rng=self.rng)
        self.snapshot = PoolSnapshot(self.name, tuple(servers), picker)
        # The data plane reads this with the snapshot (same loop, no await between the two
        # assignments, so never one without the other) and skips the call per request for
        # balancers that do not learn from completions (``on_done`` not overridden).
        learns = getattr(type(balancer), "on_done", Balancer.on_done) is not Balancer.on_done
        self.on_done = balancer.on_done if learns else None
        self.limited = any(map(_MAX_CONNS, servers))
        if self.waiting:
            self.wake()

    def _republish(self) -> None:
        """The last publish again (a hash table built off the loop is ready)."""
        if self.published:
            self.publish(*self.published)

    def pick(self, ctx: Any, ex: Any, exclude: Collection[Server] = ()) -> Server | None:
        """The server for request ``ex`` (its hash key extracted when the pool hashes on one):
        None when no server is left, ``FULL`` when every one left is at its ``max_conns``.
        A sticky pool asks its ``Sticky`` first (which calls ``plain_pick`` for new clients)."""
        if self.sticky is not None:
            return self.sticky.pick(self, ctx, ex, exclude)  # type: ignore[no-any-return]
        ctx.key = ex.hash_key(self.key_kind, self.key_name) if self.key_kind is not None else None
        server = self.snapshot.balancer.pick(ctx, exclude)
        if server is None or not self.limited or not server.max_conns or server.load.active < server.max_conns:
            return server
        return self._with_room(ctx, exclude)

    def plain_pick(self, ctx: Any, ex: Any, exclude: Collection[Server] = ()) -> Server | None:
        """``pick`` without stickiness (the same lines: ``pick`` keeps them inline for speed)."""
        ctx.key = ex.hash_key(self.key_kind, self.key_name) if self.key_kind is not None else None
        server = self.snapshot.balancer.pick(ctx, exclude)
        if server is None or not self.limited or not server.max_conns or server.load.active < server.max_conns:
            return server
        return self._with_room(ctx, exclude)

    def _with_room(self, ctx: Any, exclude: Collection[Server]) -> Server:
        """The picked server was at its max_conns: pick again among those below theirs, or FULL."""
        full = {s for s in self.snapshot.servers if s.max_conns and s.load.active >= s.max_conns}
        server = self.snapshot.balancer.pick(ctx, full.union(exclude))
        return FULL if server is None else server

    # -- the queue of requests and connections waiting for a server below its max_conns ----

    def enqueue(self, waiter: Waiter) -> bool:
        """Park ``waiter`` until a server has room; False when the queue is full (of waiters
        still waiting: those whose clients left give up their places first)."""
        waiting = self.waiting
        if len(waiting) >= self.max_queue:
            if not self.max_queue:
                return False
            kept = [entry for entry in waiting if entry[0].waiting()]
            if len(kept) >= self.max_queue:
                return False
            waiting.clear()
            waiting.extend(kept)
        waiting.append((waiter, self.clock()))
        return True

    def wake(self) -> None:
        """A lease ended (or the servers changed): the longest waiting get servers with room.
        Each leaves the queue before it picks: what it does may end a lease and wake it again.
        A pool a reload replaced shares its queue with its successor (``succeed``): leases taken
        before the reload still end here, and the places they free go to the new pool's queue."""
        if self.successor is not None:
            self.successor.wake()
            return
        waiting = self.waiting
        while waiting:
            entry = waiting.popleft()
            if entry[0].waiting() and not entry[0].try_again(self):
                waiting.appendleft(entry)  # every server is still full: it stays first
                return

    def succeed(self, old: PoolRuntime) -> None:
        """A reload put this pool in the place of ``old`` (same name): what waits in ``old``'s
        queue waits here (one queue, shared, so that ``old``'s leases still in flight wake it)."""
        old.waiting.extend(self.waiting)  # (any that queued here already come after them)
        self.waiting = old.waiting  # (one deque through every reload: no old pool keeps a stale one)
        old.successor = self
        if self.waiting:
            self.wake()

    # -- retries and passive health ----------------------------------------------

    def retry_allowed(self) -> bool:
        if self.retried >= self.budget:
            return False
        self.retried += 1
        return True

    def failing(self, server: Server, why: str) -> None:
        if self.on_failing is not None:
            self.on_failing(server, why)

    # -- housekeeping --------------------------------------------------------------

    def sweep(self, now: float) -> None:
        for up in self.upstreams.values():
            up.sweep(now)
        waiting = self.waiting
        while waiting and now - waiting[0][1] > self.queue_timeout:
            waiter, _ = waiting.popleft()
            if waiter.waiting():
                waiter.gave_up()
        if now - self.window_start >= 1.0:
            completed = sum(s.load.requests + s.load.failures for s in self.known)
            self.budget = max(float(MIN_RETRIES), self.retry_budget * (completed - self.completed))
            self.completed, self.retried, self.window_start = completed, 0, now

    def close(self) -> None:
        self.tables.closed = True
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
