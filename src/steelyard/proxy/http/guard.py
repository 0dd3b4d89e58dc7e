"""Request rules checked once a head is complete, beyond what llhttp already refuses.

llhttp (httptools, strict mode) already refuses, as a parse error (400): obsolete line folding,
whitespace in or before a header name's colon, control characters (and DEL) in names, values
and the target, bare LF line ends, unknown or malformed methods, bad HTTP versions (other than
digits), both Content-Length and Transfer-Encoding, several or malformed Content-Length values
(signs, lists, hex, overflow), a Transfer-Encoding list that does not end in ``chunked`` (or
that names ``chunked`` twice), malformed chunk sizes and chunk extensions. These are tested in
``tests/integration/test_hardening_framing.py``, so a change of llhttp would show there.

``verdict`` adds (each a status the request is refused with; nothing is forwarded):
- a request target that is not origin form (``/...``), absolute form (``http(s)://...``, turned
  into origin form), ``*`` for OPTIONS, or authority form for CONNECT (405): 400;
- a fragment (``#``) in the target (no request target has one, RFC 9112 section 3.2): 400;
- an HTTP/1.1 request without Host (in absolute form too), or with a Host that is not ``host[:port]``: 400;
- Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1: faulty framing): 400;
- a Content-Length over the listener's ``max_body_size``: 413.
Versions other than 1.0 and 1.1 (2.0, 0.9) get 505, set while parsing (``version_ok``).
A route's own limits are checked once it is matched (``route_verdict``: 413, 429). The listener's
``rate_limit`` (429) and ``redirect_https`` (308, to ``https_location``) are built-in filters
(``builtin``), run after these rules like every filter.

The per-request cost on the common path is in ``dispatch``: one set lookup for the Host value
(validated values are remembered, bounded like ``headers.REQUEST_CODES``) and a ``#`` search;
only requests that fail one of those come here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from httptools import HttpParserError

from .errors import error_response

if TYPE_CHECKING:
    from ...core.ratelimit import TokenBuckets
    from .downstream import DownstreamProtocol
    from .exchange import Exchange

CHECK = -1  # ``Exchange.refuse`` value: not refused yet, but ``verdict`` must look (framing headers came)

_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]{0,5})?")
GOOD_HOSTS: set[bytes] = set()  # Host values that passed ``_HOST``: one lookup on the common path
GOOD_HOSTS_MAX = 512


class Refused(HttpParserError):
    """Raised from a parser callback to refuse the request with ``status`` (413, 414, 431)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"refused with {status}")
        self.status = status


def parse_status(exc: BaseException) -> int:
    """The status for a parse error: a ``Refused`` raised in a callback (httptools wraps it), else 400."""
    cause = exc.__context__ if not isinstance(exc, Refused) else exc
    return cause.status if isinstance(cause, Refused) else 400


def host_ok(host: bytes) -> bool:
    if _HOST.fullmatch(host) is None:
        return False
    if len(GOOD_HOSTS) < GOOD_HOSTS_MAX and len(host) <= 255:
        GOOD_HOSTS.add(host)
    return True


def https_location(host: bytes, url: bytes, https_port: int) -> bytes:
    """``Location`` of the https redirect: the name of ``host`` (a validated Host value, its
    plain port dropped; an IPv6 literal keeps its brackets), ``:https_port`` unless 443, ``url``."""
    name = host[: host.find(b"]") + 1] if host[:1] == b"[" else host.partition(b":")[0]
    port = b"" if https_port == 443 else b":%d" % https_port
    return b"https://%b%b%b" % (name, port, url)


def version_ok(version: str) -> bool:
    return version == "1.0" or version == "1.1"


def verdict(down: DownstreamProtocol, ex: Exchange) -> int:
    """0 when ``ex`` may go on; else the status it is refused with (see the module docstring)."""
    if ex.refuse > 0:
        return ex.refuse
    url = ex.url
    if ex.host is None and ex.http11:
        return 400  # RFC 9112 section 3.2: every HTTP/1.1 request has Host, absolute form or not
    if url[:1] != b"/":
        if ex.method == b"CONNECT":
            return 405
        if url == b"*":
            if ex.method != b"OPTIONS":
                return 400
        else:
            ex.to_origin_form()
            if ex.url[:1] != b"/":
                return 400  # neither origin form nor absolute form with an http(s) scheme
    if b"#" in ex.url:
        return 400
    host = ex.host
    if host is not None and host not in GOOD_HOSTS and not host_ok(host):
        return 400
    if ex.chunked and not ex.http11:
        return 400
    L = down.L
    if ex.clen is not None and L.max_body_size is not None and int(ex.clen) > L.max_body_size:
        return 413
    return 0


def route_verdict(down: DownstreamProtocol, ex: Exchange, route: Any) -> int:
    """0 when ``ex`` may go on ``route``; else 413 or 429 by the route's own limits."""
    limit = route.max_body_size
    if limit is not None:
        if ex.clen is not None and int(ex.clen) > limit:
            return 413
        more = ex.extra()
        if more.body_size > limit:
            return 413  # (a pipelined request whose body came before its turn)
        more.max_body = limit
    limiter = route.limiter
    if limiter is not None and limiter.take(down.ip, down.L.now):
        ex.extra().limiter = limiter
        return 429
    return 0


def refuse(down: DownstreamProtocol, ex: Exchange, status: int) -> None:
    """Answer ``ex`` with ``status`` without forwarding it: a route's 429 keeps the connection when
    nothing of a body is left unread; the others close it (the framing is suspect)."""
    if status == 429:
        limiter: TokenBuckets = ex.more.limiter  # type: ignore[union-attr]  # (``route_verdict`` set it)
        wait = limiter.retry_after((1.0 - limiter.buckets[down.ip][0]) / limiter.rate)
        extra = b"Retry-After: %d\r\n" % wait
        down._answer_failure(
            ex, 429, error_response(429, close=True, extra=extra), error_response(429, close=False, extra=extra), False
        )
    else:
        down._refuse(status)


HEAD_STEP = 4096  # a read this big or bigger may hold a head that must be measured: fed in slices
PIPELINE_MAX = 16  # pipelined requests parsed ahead of the one being answered; the rest waits as bytes


def in_slices(down: DownstreamProtocol, data: bytes) -> bool:
    """Feed a big read to ``down`` in slices when that is needed to measure a head or to bound
    what pipelining costs (True: done).

    ``data_received`` counts a read towards the head limit only when the head is still
    unfinished after it, so a head that ends inside a big read would go unmeasured. Slices
    bound that: ``HEAD_STEP`` bytes, or the rest of a Content-Length body being read plus
    ``HEAD_STEP`` (bodies go through in big slices). The limit is thus enforced within
    ``HEAD_STEP`` bytes.

    Slices also bound pipelining: once ``PIPELINE_MAX`` requests wait behind the one being
    answered, the rest of the read is held as bytes (``DownstreamProtocol.hold``; reading
    stops) instead of becoming requests, so a client that pipelines without reading holds
    at most one read's bytes plus a slice's worth of parsed requests."""
    i, n = 0, len(data)
    while i < n:
        queue = down.queue
        if (len(queue) >= PIPELINE_MAX or (queue and down.current is None)) and not down.dead:
            # (none current, some queued: requests were answered at once in ``_next``, which
            # parses this; it sends those queued first, then feeds the rest again)
            down.hold(data[i:])
            return True
        ex = down.ex
        step = HEAD_STEP
        if ex is not None and ex.method and ex.clen is not None:
            more = ex.more
            step += int(ex.clen) - (more.body_size if more is not None else 0)
        if i == 0 and n <= step:
            return False  # one slice: the caller feeds it
        down.data_received(data[i : i + step])
        i += step
    return True


def too_slow(ex: Exchange, now: float, min_rate: int, grace: float) -> bool:
    """A request body that averages less than ``min_rate`` bytes/s since its head came
    (after ``grace`` seconds, in which any rate is fine)."""
    elapsed = now - ex.t_begin - grace
    return elapsed > 0 and (ex.more.body_size if ex.more is not None else 0) < elapsed * min_rate
