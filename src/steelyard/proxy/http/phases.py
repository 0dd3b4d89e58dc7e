"""The filter phases of one request (``steelyard.filters`` says what filters see and may do).

A request of a listener with filters goes (``start``, from ``dispatch`` once the guard passed it):

    listener request_filter calls --> route (the router, then the route's own limits)
      --> route request_filter calls --> pick (``dispatch.pick``: ctx.pool's pool, or its queue)
      --> ``Run.send``: the lease, then upstream_request_filter calls (per try: a retry comes
          back here) --> dispatch.transmit
    the server's final head --> response_filter calls (``Run.response_head``) --> the client
    the end (``log_end``: forwarded, answered by steelyard, refused, tunnel, client gone) --> logging

Rules:
- Calls run in order, each to its end; a call that returns an awaitable is waited for (a task,
  cancelled after the listener's ``request_timeout``), and the chain goes on from the next call
  when it resolves. Nothing is sent on meanwhile: the request waits unsent; in the response
  phase the server connection stops being read and what it already sent is held (``holding``).
- Each continuation first checks that the exchange is still the connection's (the client may
  have left, or another failure answered it): if not, the result is dropped.
- A failing call (it raises, returns something unexpected, or times out) is logged through its
  ``chains.Entry``, and the request is answered 500 (only it); a failing logging call is logged
  and the next logging call still runs.
- Header changes are written back into the exchange (``write_back``) after each stage, so routing,
  the pick (hash keys, sticky cookies) and the head see them; a picked server that never gets the
  request (a filter answered) is released without a verdict on it (``Lease.abandon``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from ...filters import REQUEST_MANAGED, Context, Request, Response, ResponseHead, to_parts
from .dispatch import pick, transmit
from .errors import CANNED
from .guard import refuse, route_verdict
from .holding import Held, fail_response, responded

if TYPE_CHECKING:
    from ...core.model import Server
    from ..pool import PoolRuntime
    from .chains import Call, Chain, ListenerFilters
    from .downstream import DownstreamProtocol
    from .exchange import Exchange
    from .upstream import UpstreamConnection

REQUEST, UPSTREAM, RESPONSE, LOGGING = "request_filter", "upstream_request_filter", "response_filter", "logging"
ANSWERING = (REQUEST, UPSTREAM)  # phases whose calls may return a Response
FAILED = Response(500)  # the outcome of a failed call (never sent: the canned 500 is)
Then = Callable[["Run", Any], None]


class Run(Context):
    """``ctx``, and the state of the filter phases of one exchange (``Exchange.more.filters``)."""

    __slots__ = ()
    _down: DownstreamProtocol
    _ex: Exchange
    _lf: ListenerFilters
    _chain: Chain
    _server: Server | None
    _waiting: asyncio.Future[Any] | None
    _held: Held | None
    _conn: UpstreamConnection | None

    def __init__(self, lf: ListenerFilters, down: DownstreamProtocol, ex: Exchange) -> None:
        self._lf, self._down, self._ex = lf, down, ex
        self._chain = lf.base  # (the chain of the matched route, once routed)
        self._req = Request(ex)
        self._resp = None
        self._pool = None
        self._pool_set = False
        self._server = None
        self._vars = None
        self.status, self.duration = 0, None
        self._phase = REQUEST
        self._waiting = None  # an awaited call's task
        self._held = None  # the response, while a response_filter call is awaited (``Held``)
        self._logged = False
        self._outcome = None
        self._conn = None  # (the server connection, in the response phase)

    # -- the hooks the data path calls ----------------------------------------------

    def send(self, down: DownstreamProtocol, ex: Exchange, pool: PoolRuntime, server: Server | None) -> None:
        """``dispatch.send`` for a request with filters (after the pick, a retry's pick, or the
        queue): take the lease on ``server``, run the upstream phase, then send."""
        if server is None:
            down.exchange_failed(ex, 503, False)
            return
        ex.take(pool, server, down.clock())
        self._server = server
        calls = self._chain.upstream
        if not calls:
            transmit(down, ex, pool, server)
            return
        self._phase = UPSTREAM
        self._req._headers = None  # (read again: the pick may have taken a sticky cookie out)
        run_calls(self, calls, 0, (self._req, self), _sent)

    def response_head(self, conn: UpstreamConnection, ex: Exchange, status: int, parts: list[bytes]) -> list[bytes]:
        """``UpstreamConnection.on_headers_complete``: the header fields the client gets (none
        yet while a call is awaited: ``Held`` puts them in when it is done)."""
        resp = self._resp = ResponseHead(status)
        resp._parts = parts
        calls = self._chain.response
        if not calls:
            return parts
        self._phase, self._conn, self._outcome = RESPONSE, conn, None
        pre = sum(map(len, conn.out))  # (interim responses ahead of this head, not written yet)
        run_calls(self, calls, 0, (resp, self), responded)
        if self._held is not None:
            self._held.pre = pre
            return []
        if self._outcome is not None:
            fail_response(self, conn, ex)  # (raises: the rest of this response is not read)
        headers = resp._headers
        return parts if headers is None or not headers.changed else to_parts(headers._pairs)

    def ended(self, status: int) -> None:
        """The exchange ended outside the recorded endings: ``status`` 0 when the client left
        (the server's status if its head had reached the client), else a refusal's or 101."""
        if self._held is not None:
            self._held = None  # (what the server sent is dropped with the connection)
        elif not status and self._resp is not None:
            status = self._ex.status
        if self._waiting is not None:
            self._waiting.cancel()
        log_end(self, status)


# -- running calls ---------------------------------------------------------------------


def run_calls(run: Run, calls: tuple[Call, ...], i: int, args: tuple[Any, ...], then: Then) -> None:
    """Run ``calls[i:]`` with ``args``; then ``then(run, outcome)``: None, a Response, or FAILED."""
    phase = run._phase
    n = len(calls)
    while i < n:
        call = calls[i]
        i += 1
        try:
            result = call[0](*args)
        except BaseException as exc:  # (sys.exit() or a stray CancelledError too: that request's 500)
            call[1].failed(run, exc)
            if phase is LOGGING:
                continue
            then(run, FAILED)
            return
        if result is None:
            continue
        if isawaitable(result):
            _wait(run, call, result, calls, i, args, then)
            return
        if not _answer_ok(run, call, result):
            if phase is LOGGING:
                continue
            then(run, FAILED)
            return
        then(run, result)
        return
    then(run, None)


def _answer_ok(run: Run, call: Call, result: Any) -> bool:
    if isinstance(result, Response) and run._phase in ANSWERING:
        problem = result._problem()  # (changed since it was built: it would be sent as it is)
        if not problem:
            return True
        call[1].failed(run, ValueError(f"returned a Response that cannot be sent: {problem}"))
        return False
    expected = "None or a Response" if run._phase in ANSWERING else "None"
    call[1].failed(run, TypeError(f"returned {type(result).__name__}; expected {expected}"))
    return False


def _gone(run: Run, phase: str) -> bool:
    """Whether the exchange no longer waits for this phase (its result is then dropped)."""
    if phase is LOGGING:
        return False
    if phase is RESPONSE:
        return run._held is None
    down = run._down
    return down.current is not run._ex or down.dead


class FilterExit(Exception):
    """A filter's coroutine raised SystemExit or KeyboardInterrupt: a task would let either out
    of the event loop, ending the process; here it fails that one request."""


async def _contained(aw: Any) -> Any:
    try:
        return await aw
    except (SystemExit, KeyboardInterrupt) as exc:
        raise FilterExit(f"{type(exc).__name__}({', '.join(map(repr, exc.args))})") from None


def _wait(run: Run, call: Call, aw: Any, calls: tuple[Call, ...], i: int, args: tuple[Any, ...], then: Then) -> None:
    """Wait for ``aw`` (``call``'s result), then go on with ``calls[i:]``."""
    lf, phase = run._lf, run._phase
    task = asyncio.ensure_future(_contained(aw), loop=lf.loop)
    timer = lf.loop.call_later(lf.timeout, task.cancel)
    if phase is RESPONSE and run._held is None:
        run._held = Held(run, run._conn, run._down)  # type: ignore[arg-type]  # (set with RESPONSE; stops reading)
    run._waiting = task

    def done(task: asyncio.Future[Any]) -> None:
        timer.cancel()
        if run._waiting is task:
            run._waiting = None
        if _gone(run, phase):
            if not task.cancelled():
                task.exception()  # (retrieved: asyncio would warn about it)
            return
        run._phase = phase
        if task.cancelled():
            exc: BaseException | None = TimeoutError(f"not done within {lf.timeout:g}s")
        else:
            exc = task.exception()
        if exc is not None:
            call[1].failed(run, exc)
            if phase is LOGGING:
                run_calls(run, calls, i, args, then)
            else:
                then(run, FAILED)
            return
        value = task.result()
        if value is None:
            run_calls(run, calls, i, args, then)
        elif _answer_ok(run, call, value):
            then(run, value)
        elif phase is LOGGING:
            run_calls(run, calls, i, args, then)
        else:
            then(run, FAILED)

    task.add_done_callback(done)


# -- the request, from the head to the server ---------------------------------------------


def start(lf: ListenerFilters, down: DownstreamProtocol, ex: Exchange) -> None:
    """``dispatch``: the request head passed the guard; run the listener's request_filter calls."""
    run = Run(lf, down, ex)
    ex.extra().filters = run
    run_calls(run, lf.request, 0, (run._req, run), _routed)


def _routed(run: Run, outcome: Any) -> None:
    if outcome is not None:
        answer(run, outcome)
        return
    down, ex, lf = run._down, run._ex, run._lf
    write_back(run)
    router = lf.router
    route = router.match(ex.host or b"", ex.url, ex.headers) if router.routes else None
    if route is not None:
        status = route_verdict(down, ex, route) if router.limited else 0
        if status:
            refuse(down, ex, status)
            return
        run._chain = lf.routes.get(route, lf.base)
    if not run._pool_set:
        run._pool = route.target.name if route is not None else router.default.name
    if run._chain.request:
        run_calls(run, run._chain.request, 0, (run._req, run), _chosen)
    else:
        _chosen(run, None)


def _chosen(run: Run, outcome: Any) -> None:
    if outcome is not None:
        answer(run, outcome)
        return
    write_back(run)
    run._phase = UPSTREAM  # (ctx.pool is settled)
    down, ex = run._down, run._ex
    pool = ex.pool = run._lf.pools[run._pool]  # type: ignore[index]  # (ctx.pool's setter knows the names)
    pick(down, ex, pool, run.send)  # (its lease and upstream phase come through ``Run.send``)


def _sent(run: Run, outcome: Any) -> None:
    ex = run._ex
    if outcome is not None:
        ex.abandon()  # (the picked server never got it: no verdict on it)
        answer(run, outcome)
        return
    write_back(run)
    ex.t_start = run._down.clock()  # (the server's time starts now, not when it was picked)
    transmit(run._down, ex, ex.pool, ex.server)  # type: ignore[arg-type]


def write_back(run: Run) -> None:
    """Header changes of the last stage into the exchange: the forwarded fields, Host (routing,
    X-Forwarded-Host) and X-Forwarded-For (the client's address is appended to it)."""
    headers = run._req._headers
    if headers is None or not headers.changed:
        return
    headers.changed = False
    ex = run._ex
    parts: list[bytes] = []
    host: str | None = None
    xff = []
    for name, value in headers._pairs:
        lname = name.lower()
        if lname == "x-forwarded-for":
            xff.append(value)
            continue
        if lname == "host" and host is None:
            host = value
        parts += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    ex.parts = parts
    ex.host = host.encode("latin-1") if host is not None else None
    ex.xff = ", ".join(xff).encode("latin-1") if xff else None
    if ex.xff is not None and not ex.specials:
        ex.specials = 4  # (build_head's general path: the common one adds no X-Forwarded-For of the client's)
    if run._down.keep_headers:  # (routes or hash keys read them as pairs)
        kept = [(n, v) for n, v in ex.headers if n.lower().decode("latin-1") in REQUEST_MANAGED]
        ex.headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers._pairs] + kept


def answer(run: Run, outcome: Response) -> None:
    """Answer the request with a filter's ``Response`` (or 500 for FAILED) instead of forwarding it."""
    down, ex = run._down, run._ex
    if outcome is FAILED:
        run._resp = ResponseHead(500)
        down._answer_failure(ex, 500, CANNED[(500, True)], CANNED[(500, False)], False)
        return
    run._resp = ResponseHead(outcome.status, outcome.headers)
    head_only = ex.method == b"HEAD"
    closing, keeping = outcome.render(True, head_only), outcome.render(False, head_only)
    down._answer_failure(ex, outcome.status, closing, keeping, False)


# -- the end ------------------------------------------------------------------------------


def log_end(run: Run, status: int) -> None:
    """The exchange ended with ``status`` (0: no response reached the client): logging, once."""
    if run._logged:
        return
    run._logged = True
    calls = run._chain.logging
    if not calls:
        return
    run.status = status
    run.duration = run._down.clock() - run._ex.t_begin
    resp = run._resp if status else None
    if resp is not None and resp.status != status:
        resp = ResponseHead(status)  # (steelyard answered in its place: a 502 after a broken head)
    elif resp is None and status:
        resp = ResponseHead(status)
    run._phase = LOGGING
    run_calls(run, calls, 0, (run._req, resp, run), _nothing)


def _nothing(run: Run, outcome: Any) -> None:
    pass
