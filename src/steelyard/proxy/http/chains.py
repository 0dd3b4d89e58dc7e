"""A listener's filters as the chains its requests go through, built once per configuration load.

``HttpListener.filters`` is a ``ListenerFilters`` when the listener or one of its routes has
filters (``filters``, or the keys built-in filters stand for: ``redirect_https``, ``rate_limit``),
else None: a listener without filters pays one attribute test for them per request, in
``dispatch``. Its requests then have a ``phases.Run`` in ``Exchange.more.filters``, which the
other hooks test (``more`` is there already for bodies and retries: no new field per request).

Order: the built-in filters the listener's own keys stand for (``redirect_https``, then
``rate_limit``), the listener's ``filters``, then the matched route's ``filters``, in the order
written. A chain holds, per phase, only the methods the filters define (``Filter`` has none),
bound once here. Logging is reached through ``HttpListener.access`` (``Recorder``), which every
ending already tests for the access log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...filters import PHASES, Filter
from . import phases

if TYPE_CHECKING:
    from ..pool import PoolRuntime
    from .access import AccessLog
    from .downstream import DownstreamProtocol
    from .exchange import Exchange
    from .router import Route, Router

log = logging.getLogger("steelyard.filters")


class Entry:
    """One configured filter: its name (its ``use``), the instance, and its error-log throttle."""

    __slots__ = ("name", "filter", "warned", "quiet")

    def __init__(self, name: str, instance: Filter) -> None:
        self.name, self.filter = name, instance
        self.warned = -1e9  # when its last error line was written (loop clock)
        self.quiet = 0  # failures not logged since then

    def failed(self, run: phases.Run, exc: BaseException) -> None:
        """Log a failure of this filter: a line a second at most, counting the ones left out."""
        now = run._lf.loop.time()
        if now - self.warned < 1.0:
            self.quiet += 1
            return
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
        more = f" ({self.quiet} more failure(s) since the last line)" if self.quiet else ""
        what = "the request got 500" if run._phase != phases.LOGGING else "its logging was cut short"
        log.error(
            'filter %s failed in %s on listener "%s" (%s %s): %s: %s%s; %s%s',
            self.name,
            run._phase,
            run._lf.name,
            run._ex.method.decode("latin-1"),
            run._ex.url[:200].decode("latin-1"),
            type(exc).__name__,
            exc,
            where,
            what,
            more,
        )
        self.warned, self.quiet = now, 0


class Chain:
    """The calls of each phase for requests of one route (or of none), in order."""

    __slots__ = ("request", "upstream", "response", "logging")

    def __init__(self, request: Sequence[Entry], after: Sequence[Entry]) -> None:
        """``request``: whose request_filter runs at this stage; ``after``: whose later phases run."""
        self.request = _calls(request, "request_filter")
        self.upstream = _calls(after, "upstream_request_filter")
        self.response = _calls(after, "response_filter")
        self.logging = _calls(after, "logging")


Call = tuple[Callable[..., Any], Entry]


def _calls(entries: Sequence[Entry], phase: str) -> tuple[Call, ...]:
    """The bound ``phase`` methods of ``entries`` that define it."""
    assert phase in PHASES
    return tuple((fn, e) for e in entries if callable(fn := getattr(e.filter, phase, None)))


class ListenerFilters:
    """What ``dispatch`` hands a listener's requests to (``dispatch`` here starts ``phases``).

    ``request``: the listener's request_filter calls; ``base``: the chain of a request no route
    with filters matched; ``routes``: the chain of each route that has filters; ``router`` and
    ``pools``: those of the same configuration (a request waiting on a filter across a reload
    finishes on the configuration it began with, as requests in flight do)."""

    __slots__ = ("name", "request", "base", "routes", "router", "pools", "loop", "timeout", "logs")

    def __init__(
        self,
        name: str,
        listener: Sequence[Entry],
        routes: Mapping[Route[PoolRuntime], Sequence[Entry]],
        router: Router[PoolRuntime],
        pools: dict[str, PoolRuntime],
        loop: asyncio.AbstractEventLoop,
        timeout: float,
    ) -> None:
        self.name = name
        self.request = _calls(listener, "request_filter")
        self.base = Chain((), listener)
        self.routes = {route: Chain(own, [*listener, *own]) for route, own in routes.items()}
        self.router, self.pools, self.loop = router, pools, loop
        self.timeout = timeout  # an awaited phase not done by then fails (the listener's request_timeout)
        self.logs = any(c.logging for c in (self.base, *self.routes.values()))

    def dispatch(self, down: DownstreamProtocol, ex: Exchange) -> None:
        phases.start(self, down, ex)


class Recorder:
    """``HttpListener.access`` when some filter has a logging phase: every ending that records
    to the access log (``exchange_done``, ``_answer_failure``) reaches the filters through it."""

    __slots__ = ("access",)

    def __init__(self, access: AccessLog | None) -> None:
        self.access = access

    def record(self, down: DownstreamProtocol, ex: Exchange, status: int, server: Any) -> None:
        more = ex.more
        if more is not None and more.filters is not None:
            phases.log_end(more.filters, status)
        if self.access is not None:
            self.access.record(down, ex, status, server)


def from_config(
    lc: Any, router: Router[PoolRuntime], pools: dict[str, PoolRuntime], loop: asyncio.AbstractEventLoop
) -> ListenerFilters | None:
    """The filters of listener config ``lc`` (its routes are ``router``'s, in order), or None."""
    from .builtin import RateLimit, RedirectHttps

    listener = []
    if lc.redirect_https:
        listener.append(Entry("redirect_https", RedirectHttps({"https_port": lc.https_port})))
    rl = lc.rate_limit
    if rl is not None:
        options = {"rate": rl.rate, "burst": rl.bucket_size, "max_clients": rl.max_clients}
        listener.append(Entry("rate_limit", RateLimit(options)))
    listener += [Entry(f.use, f.filter) for f in lc.filters]
    routes = {
        route: [Entry(f.use, f.filter) for f in rc.filters]
        for route, rc in zip(router.routes, lc.routes, strict=True)
        if rc.filters
    }
    if not listener and not routes:
        return None
    return ListenerFilters(lc.name, listener, routes, router, pools, loop, lc.request_timeout)
