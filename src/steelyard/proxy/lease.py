"""The one pick-and-account contract: what holding a server picked from a pool means.

Every pick holds a ``Lease`` — in the data plane an HTTP exchange, a TCP relay, a UDP flow; in
the simulator each simulated request (``sim.nodes.Request``, settled like an HTTP exchange) —
from ``take`` until ``settle`` (HTTP: one outcome per request), ``release`` (L4: the connection
or flow ended) or ``abandon`` (the client ended it; nothing is the server's doing). Rules:

- ``take``: the server's in-flight count (``load.active``) is +1 until the lease ends, once;
  the balancer's completion hook is read with the pool's snapshot (they change together).
- An outcome is reported once per attempt: ``settle`` for a request, ``connected`` /
  ``failed`` for an L4 connect (the balancer learns the connect time: a long-lived
  connection would report nothing for hours otherwise), ``first_reply`` for a UDP flow.
  It feeds the balancer's ``on_done`` and the passive-health streaks: a failure (connect,
  reset, timeout) adds to ``fail_streak`` and ``err_streak``, a 5xx to ``err_streak`` only,
  anything else clears both; past the pool's ``eject_after`` / ``eject_5xx`` the pool
  reports the server (``PoolRuntime.failing``), and the control plane decides.
- When a lease ends, the pool's queue (requests or connections waiting for a server below its
  ``max_conns``) is woken: the freed place goes to the longest waiting.
- What a lease uses of its pool: ``on_done`` (read at ``take``), ``waiting``, ``eject_after``
  and ``eject_5xx``, and ``failing`` and ``wake`` when those call for it. A ``PoolRuntime`` in
  the data plane; in the simulator the balancer node (``sim.nodes.Node``: nobody waits, passive
  health off).
- A ``Waiter`` is what waits in that queue (``PoolRuntime.enqueue``): the pool calls
  ``try_again`` when a place may be free (it picks, and says whether it is still waiting),
  ``gave_up`` when ``queue_timeout`` passed, and skips one that is no longer ``waiting``.

Slow start is the pool's picker (``core.slow_start``, set by ``publish``): a lease holds
whatever server that picker chose.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Protocol

from ..core.model import LATENCY_BOUNDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.model import Server
    from .pool import PoolRuntime

_FIRST = LATENCY_BOUNDS[0]


class Waiter(Protocol):
    """Something waiting in a pool's queue for a server below its ``max_conns``."""

    def waiting(self) -> bool:
        """Still wants a server (False: its client left; the queue drops it)."""
        ...

    def try_again(self, pool: PoolRuntime) -> bool:
        """Pick again; False when every server is still full (it stays first in the queue)."""
        ...

    def gave_up(self) -> None:
        """It waited ``queue_timeout``: refuse its client."""
        ...


class Lease:
    """One pick's hold on a server (see the module docstring). The HTTP ``Exchange`` is one
    (it carries these fields itself: no second object per request), and so is a simulated
    request; L4 relays and flows make their own."""

    __slots__ = ("server", "pool", "on_done", "t_start", "t_head", "status", "resp_bytes")

    def __init__(self) -> None:
        self.server: Server | None = None  # held until the lease ends (then None)
        self.pool: PoolRuntime | None = None
        self.on_done: Callable[[Server, bool, float], None] | None = None  # the balancer's hook, if it learns
        self.t_start = 0.0  # when the server was taken (the outcome's elapsed time starts here)
        self.t_head = 0.0  # when its answer began (read only when ``on_done`` is set; 0: none)
        self.status = 0  # the answer's status (HTTP); 0: none
        self.resp_bytes = 0  # bytes of the answer as the server sent them

    def take(self, pool: PoolRuntime, server: Server, now: float) -> None:
        self.pool = pool
        self.server = server
        self.on_done = pool.on_done  # (read with the snapshot that picked it: they change together)
        self.t_start = now
        server.load.active += 1

    # -- HTTP: one outcome per request, and the lease ends with it -------------------

    def settle(self, ok: bool, now: float, sent: int = 0) -> None:
        """End the lease with the request's outcome (once): in-flight count, latency and
        byte counters, passive health, and the balancer's hook with the time to the answer's
        head (or to ``now`` when no head came). ``ok``: an answer came, whatever its status;
        not ``ok``: connect failure, reset, timeout or broken answer. ``sent``: bytes of the
        request as the server got them."""
        server = self.server
        if server is None:
            return
        self.server = None
        load = server.load
        load.active -= 1
        elapsed = now - self.t_start
        load.latency[bisect_right(LATENCY_BOUNDS, elapsed) if elapsed >= _FIRST else 0] += 1  # (most: the first)
        load.latency_sum += elapsed
        pool: PoolRuntime = self.pool  # type: ignore[assignment]
        if ok:
            load.requests += 1  # (2xx is requests less the other classes: only those are counted)
            load.resp_bytes += self.resp_bytes
            load.req_bytes += sent
            status = self.status
            if status < 300:
                if load.err_streak:  # (never below fail_streak: zero means both are)
                    load.fail_streak = load.err_streak = 0
            elif status < 500:
                load.by_class[status // 100] += 1
                if load.err_streak:
                    load.fail_streak = load.err_streak = 0
            else:
                load.by_class[5] += 1
                load.fail_streak = 0
                load.err_streak += 1
                if pool.eject_5xx and load.err_streak >= pool.eject_5xx:
                    pool.failing(server, f"{load.err_streak} failures or 5xx responses in a row")
        else:
            load.failures += 1
            _failed(pool, server, "failed requests in a row (connect, reset or timeout)")
        if self.on_done is not None:
            self.on_done(server, ok, (self.t_head or now) - self.t_start)
        if pool.waiting:
            pool.wake()

    # -- L4: the outcome comes early (connect, first reply), the lease ends later --------

    def connected(self, now: float) -> None:
        """The server took the connection (TCP) or answered the flow's first datagram (UDP)."""
        server: Server = self.server  # type: ignore[assignment]
        load = server.load
        if load.err_streak:
            load.fail_streak = load.err_streak = 0
        if self.on_done is not None:
            self.on_done(server, True, now - self.t_start)

    def learn(self, ok: bool, now: float) -> None:
        """Only the balancer's hook: a UDP flow that ends without a reply (nothing to blame)."""
        if self.on_done is not None and self.server is not None:
            self.on_done(self.server, ok, now - self.t_start)

    def failed(self, now: float, why: str, learn: bool = True) -> None:
        """The server failed it (connect refused or timed out, an ICMP error): reported against
        the server, and the lease ends. ``learn``: the balancer's hook hears of it (not when an
        earlier outcome of this lease was reported already)."""
        server = self.server
        if server is None:
            return
        self.server = None
        load = server.load
        load.active -= 1
        load.failures += 1
        pool: PoolRuntime = self.pool  # type: ignore[assignment]
        _failed(pool, server, f"failed connects in a row ({why})")
        if learn and self.on_done is not None:
            self.on_done(server, False, now - self.t_start)
        if pool.waiting:
            pool.wake()

    def release(self) -> None:
        """A connection or flow that the server served ended: the lease ends (one more served)."""
        server = self.server
        if server is None:
            return
        self.server = None
        server.load.active -= 1
        server.load.requests += 1
        pool: PoolRuntime = self.pool  # type: ignore[assignment]
        if pool.waiting:
            pool.wake()

    # -- any: the client ended it --------------------------------------------------

    def abandon(self) -> None:
        """The client ended it (it left, or stalled its upload; a stop): the in-flight count
        drops, and nothing is reported as the server's success or failure."""
        server = self.server
        if server is not None:
            self.server = None
            server.load.active -= 1
            pool: PoolRuntime = self.pool  # type: ignore[assignment]
            if pool.waiting:
                pool.wake()


def _failed(pool: PoolRuntime, server: Server, what: str) -> None:
    """One more failure of ``server`` in a row: past the pool's thresholds, it is reported."""
    load = server.load
    load.fail_streak += 1
    load.err_streak += 1
    if pool.eject_after and load.fail_streak >= pool.eject_after:
        pool.failing(server, f"{load.fail_streak} {what}")
    elif pool.eject_5xx and load.err_streak >= pool.eject_5xx:
        pool.failing(server, f"{load.err_streak} failures or 5xx responses in a row")
