"""Where a request goes: routing, picking, the max_conns queue, sending, and retries.

Functions of a client connection (``DownstreamProtocol``) and one of its requests, kept in
their own module so the connection protocol stays about parsing and flow control.

Retry rules (``retry_elsewhere``), checked by the caller and here:
- only while nothing of a response reached the client, and at most ``pool.retries``
  times per request, each on a server that has not failed this request yet;
- a request that may have reached its server (the connection broke or timed out
  after it was sent) goes again only when it is replayable (idempotent, no body);
  a connect failure proves it never arrived, so any request goes again;
- a request that may have reached its server also needs the pool's retry budget to allow
  it (a storm of failures is not doubled by retries); one that never reached a server
  (``UNSENT``) adds no work anywhere and is bounded by ``retries`` alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..pool import FULL
from .guard import GOOD_HOSTS, refuse, route_verdict, verdict

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...core.model import Server
    from ..pool import PoolRuntime
    from .downstream import DownstreamProtocol
    from .exchange import Exchange

    Sender = Callable[[DownstreamProtocol, Exchange, PoolRuntime, Server | None], None]

log = logging.getLogger("steelyard.proxy")
NO_RETRY, SENT, UNSENT = 0, 1, 2  # may a failed request go to another server, and had it reached this one


def dispatch(down: DownstreamProtocol, ex: Exchange) -> None:
    """A request head is complete and it is this connection's turn: refuse it, or route and pick."""
    L = down.L
    if ex.refuse or ex.host not in GOOD_HOSTS or ex.url[:1] != b"/" or 35 in ex.url:  # (35: "#", an int is found
        # without building a search)
        status = verdict(down, ex)  # (the rules are in ``guard``; the common path stops at the line above)
        if status:
            refuse(down, ex, status)
            return
    if L.filters is not None:  # request phases (``phases``: filters route, pick and send it on)
        L.filters.dispatch(down, ex)
        return
    router = L.router
    if router.limited:  # (a listener with per-route limits)
        route = router.match(ex.host or b"", ex.url, ex.headers)
        status = route_verdict(down, ex, route) if route is not None else 0
        if status:
            refuse(down, ex, status)
            return
        pool = route.target if route is not None else router.default
    else:
        pool = router.route(ex.host or b"", ex.url, ex.headers) if router.routes else router.default
    ex.pool = pool
    pick(down, ex, pool, send)


def pick(down: DownstreamProtocol, ex: Exchange, pool: PoolRuntime, sender: Sender) -> None:
    """Pick ``ex``'s server in ``pool`` and hand both to ``sender`` (``send``, or the filters'
    ``Run.send``); when every server is full, ``ex`` waits in the pool's queue."""
    try:
        server = pool.pick(down.ctx, ex)
    except Exception:  # a user's algorithm failed: that is a 500, not a reason to drop the client
        log.exception("pool %s: the balancer's pick failed", pool.name)
        down.exchange_failed(ex, 500, False)
        return
    if server is FULL:
        if not pool.enqueue(Queued(ex, down, sender)):
            down.busy(ex)
        return
    sender(down, ex, pool, server)


def send(down: DownstreamProtocol, ex: Exchange, pool: PoolRuntime, server: Server | None) -> None:
    """Send ``ex`` to ``server`` of ``pool`` (None: no server is left, 503): the exchange takes
    its lease on the server, and a connection to it (an idle one, or a new one)."""
    if server is None:
        down.exchange_failed(ex, 503, False)
        return
    ex.take(pool, server, down.clock())
    ex.build_head(server, down.forwarded, down.ip, down.L.scheme)  # (``transmit``, inline: every request runs it)
    cpool = pool.upstreams[server]
    conn = cpool.acquire()
    if conn is None:
        cpool.connect_for(ex, down)
    else:
        down.attach(conn, ex)


def transmit(down: DownstreamProtocol, ex: Exchange, pool: PoolRuntime, server: Server) -> None:
    """The end of ``send``, for a request with filters once its upstream phase is done (``phases``)."""
    ex.build_head(server, down.forwarded, down.ip, down.L.scheme)
    cpool = pool.upstreams[server]
    conn = cpool.acquire()
    if conn is None:
        cpool.connect_for(ex, down)
    else:
        down.attach(conn, ex)


def retry_elsewhere(down: DownstreamProtocol, ex: Exchange, how: int) -> bool:
    """Send ``ex`` again, to a server it has not failed on; False when it may not or cannot go.
    ``how`` is ``SENT`` or ``UNSENT`` (see the module docstring)."""
    pool = ex.pool
    if pool is None or ex.tries >= pool.retries or down.dead or down.current is not ex:
        return False
    if how == SENT and not pool.retry_allowed():
        return False
    failed = ex.server
    ex.settle(False, down.clock())  # the failed try counts against its server
    more = ex.extra()
    if failed is not None:
        more.tried += (failed,)
    try:
        server = pool.pick(down.ctx, ex, more.tried)
    except Exception:
        log.exception("pool %s: the balancer's pick failed", pool.name)
        return False
    if server is None or server is FULL:
        return False
    more.tries += 1
    pool.retried_total += 1
    ex.conn = None
    ex.t_sent = 0.0
    if more.filters is not None:  # its upstream phase runs again, for the new server (``phases``)
        more.filters.send(down, ex, pool, server)
    else:
        send(down, ex, pool, server)
    return True


class Queued:
    """A request waiting in its pool's queue for a server below its ``max_conns``
    (a ``lease.Waiter``); once a place is free it goes to its ``sender``."""

    __slots__ = ("ex", "down", "sender")

    def __init__(self, ex: Exchange, down: DownstreamProtocol, sender: Sender) -> None:
        self.ex, self.down, self.sender = ex, down, sender

    def waiting(self) -> bool:
        return self.down.current is self.ex and not self.down.dead

    def try_again(self, pool: PoolRuntime) -> bool:
        ex, down = self.ex, self.down
        ex.pool = pool  # (a reload may have moved it to the new pool of the same name)
        server = pool.pick(down.ctx, ex)
        if server is FULL:
            return False
        self.sender(down, ex, pool, server)
        return True

    def gave_up(self) -> None:
        self.down.busy(self.ex)
