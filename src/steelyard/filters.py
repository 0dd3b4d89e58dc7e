"""Request phases for your own Python code: what a filter imports.

A filter is a class, named in the configuration by its dotted path (``use = "mypkg.filters:Tag"``)
with its ``options`` table, and built once per configuration load. Every phase method is
optional, and may be a plain ``def`` or an ``async def``::

    from steelyard.filters import Filter, Response

    class RequireKey(Filter):
        def __init__(self, options):
            super().__init__(options)
            self.key = options["key"]  # a KeyError or ValueError here: `steelyard check` names the key

        def request_filter(self, req, ctx):
            if req.headers.get("X-Api-Key") != self.key:
                return Response(403, body="no key\\n")
            return None

The phases, in the order a request meets them (docs/ARCHITECTURE.md, "Write your own filter"):

- ``request_filter(req, ctx) -> Response | None``: the request head is in, before routing. Return
  a ``Response`` to answer at once (nothing is forwarded); set ``ctx.pool`` to send the request
  to that pool; change ``req.headers`` or ``req.path`` and routing and the server see the change.
- ``upstream_request_filter(req, ctx) -> Response | None``: a server was picked (``ctx.server``);
  the head is not built yet. Runs once per try (a retry picks again): changes stay for the next
  try, so prefer ``set`` to ``add``.
- ``response_filter(resp, ctx) -> None``: the server's final response head, before the client
  sees any of it (not for a 101 that opens a tunnel).
- ``logging(req, resp, ctx) -> None``: the exchange ended, forwarded or answered by steelyard
  (``resp`` is None when the client left before a response head reached it).

A phase that returns an awaitable is waited for: the request is not sent on (or the server's
response not read further) until it resolves. A phase that raises, returns something other
than None or a ``Response`` where one may answer, or does not finish within the listener's
``request_timeout``, answers that request with 500 and is logged with the filter's name (at
most a line a second per filter); other requests are unaffected.

What filters may not change: the framing and hop-by-hop headers (Content-Length,
Transfer-Encoding, Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-*) stay the proxy's; they
are not shown, and setting one raises ``ValueError``. X-Forwarded-Proto and X-Forwarded-Host are
the proxy's too; X-Forwarded-For may be read and set (the client's address is appended after).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from .header_fields import MAX_FIELDS, REQUEST_MANAGED, RESPONSE_MANAGED, Headers, from_parts, to_parts

__all__ = [
    "MAX_FIELDS", "PHASES", "REQUEST_MANAGED", "RESPONSE_MANAGED", "Context", "Filter", "Headers", "Request",
    "Response", "ResponseHead", "from_parts", "to_parts",
]  # fmt: skip

PHASES = ("request_filter", "upstream_request_filter", "response_filter", "logging")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f#]")


class Filter:
    """Base class of every filter. ``options`` is the entry's ``options`` table (a dict; empty
    when none is given), kept as ``self.options``.

    The base class defines no phase methods: steelyard calls only the phases a class defines,
    so a listener pays for nothing its filters do not do. ``__init__`` runs whenever the
    configuration is read (``steelyard check``, start, every reload, every worker process):
    check the options there and raise ``ValueError`` (or ``KeyError``, ``TypeError``) to have
    the configuration refused with the key path; open connections or start tasks lazily, on
    the first request, not there. One instance serves every request of its listener (or
    route): keep per-request state in ``ctx.vars``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options


Fields = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


class Response:
    """An answer a filter gives instead of forwarding the request: ``status`` (200-599),
    ``headers`` (a dict, pairs or ``Headers``; Content-Length and Connection are the proxy's)
    and ``body`` (bytes, or str sent as UTF-8). Return it from ``request_filter`` or
    ``upstream_request_filter``. The connection stays open when the client keeps it alive and
    no request body is left unread."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Fields | None = None, body: bytes | str = b"") -> None:
        if not isinstance(body, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"a filter's response body is bytes or str; got {type(body).__name__}")
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        problem = self._problem()
        if problem:
            raise ValueError(problem)

    def _problem(self) -> str:
        """What is wrong with this response as it stands ("" if nothing): checked again when a
        filter returns it, since its attributes may have been changed after it was built."""
        status, body = self.status, self.body
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            return f"a filter's response status is 200-599; got {status!r}"
        if not isinstance(body, (bytes, bytearray)):
            return f"a filter's response body is bytes or str (given to Response); got {type(body).__name__}"
        if not isinstance(self.headers, Headers):
            return f"a filter's response headers are Headers; got {type(self.headers).__name__}"
        if status in (204, 304) and body:
            return f"a {status} response has no body"
        return ""

    def render(self, close: bool, head_only: bool = False) -> bytes:
        """The response as it goes to the client."""
        status = self.status
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}\r\n".encode()]
        lines += [f"{n}: {v}\r\n".encode("latin-1") for n, v in self.headers._pairs]
        if status != 204:
            lines.append(b"Content-Length: %d\r\n" % len(self.body))
        lines.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
        if not head_only:
            lines.append(self.body)
        return b"".join(lines)


class ResponseHead:
    """``resp`` in ``response_filter`` and ``logging``: ``status`` (read-only: the framing depends
    on it) and ``headers`` (change them in ``response_filter``; the client gets the change)."""

    __slots__ = ("_status", "_headers", "_parts")

    def __init__(self, status: int, headers: Headers | None = None) -> None:
        self._status = status
        self._headers = headers
        self._parts: list[bytes] | None = None  # (the server's header fields, turned into Headers on first use)

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers._of(from_parts(self._parts or []), RESPONSE_MANAGED)
        return self._headers


class Request:
    """``req``: the request as the proxy will forward it. ``method`` (read-only), ``headers``
    (``Headers``), ``host`` (the Host header, or None), and the target: ``path`` (up to ``?``),
    ``query`` (after it; "" when none) and ``target`` (both, as in the request line). Setting
    ``path``, ``query`` or ``target`` rewrites what the server is asked for; routing
    (after ``request_filter``) sees it too. Changes made in ``logging`` go nowhere."""

    __slots__ = ("_ex", "_headers")

    def __init__(self, ex: Any) -> None:
        self._ex = ex  # (the proxy's exchange: url, parts, host, xff are read and written back)
        self._headers: Headers | None = None

    @property
    def method(self) -> str:
        return str(self._ex.method.decode("latin-1"))

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            ex = self._ex
            pairs = from_parts(ex.parts)
            if ex.xff is not None:
                pairs.append(("X-Forwarded-For", ex.xff.decode("latin-1")))
            self._headers = Headers._of(pairs, REQUEST_MANAGED)
        return self._headers

    @property
    def host(self) -> str | None:
        if self._headers is not None:
            return self._headers.get("host")
        return self._ex.host.decode("latin-1") if self._ex.host is not None else None

    @property
    def target(self) -> str:
        return str(self._ex.url.decode("latin-1"))

    @target.setter
    def target(self, value: str) -> None:
        if not isinstance(value, str) or value[:1] != "/" or _BAD_TARGET.search(value) or not value.isascii():
            raise ValueError(
                "a request target starts with '/' and has no spaces, controls, '#' or characters beyond "
                f"ASCII (percent-encode them: urllib.parse.quote); got {value!r}"
            )
        self._ex.url = value.encode("latin-1")

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @path.setter
    def path(self, value: str) -> None:
        if not isinstance(value, str) or "?" in value:
            raise ValueError(f"a path has no '?' (set query, or target); got {value!r}")
        query = self.query
        self.target = f"{value}?{query}" if query else value

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @query.setter
    def query(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValueError(f"a query is a str; got {value!r}")
        self.target = f"{self.path}?{value}" if value else self.path

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


class Context:
    """``ctx``: what the phases of one request share.

    - ``client_ip`` (str), ``listener`` (its name);
    - ``pool``: the name of the pool the request goes to. None in a listener's
      ``request_filter`` until a filter sets it; a route's filters see the route's pool.
      Set it in ``request_filter`` to send the request there (a name that is no pool: 500);
    - ``server``, ``server_address``: the picked server's name and host:port (None before
      the pick, and when steelyard answered without one);
    - ``vars``: a dict for the filters' own use, from the first phase to ``logging``;
    - ``status`` (the status the client got, 0 if none) and ``duration`` (seconds from the
      request head to the end of the answer): set for ``logging``; ``tries``: retries so far.
    """

    __slots__ = (
        "_down", "_ex", "_lf", "_chain", "_req", "_resp", "_pool", "_pool_set", "_server", "_vars",
        "status", "duration", "_phase", "_waiting", "_held", "_logged", "_outcome", "_conn",
    )  # fmt: skip
    # (set by the proxy; the underscored ones are its own, not part of this API)
    status: int
    duration: float | None
    _down: Any
    _ex: Any
    _lf: Any
    _chain: Any
    _req: Request
    _resp: ResponseHead | None
    _pool: str | None
    _pool_set: bool
    _server: Any
    _vars: dict[str, Any] | None
    _phase: str
    _waiting: Any
    _held: Any
    _logged: bool
    _outcome: Any
    _conn: Any

    @property
    def client_ip(self) -> str:
        return str(self._down.ip.decode())

    @property
    def listener(self) -> str:
        return str(self._lf.name)

    @property
    def pool(self) -> str | None:
        return self._pool

    @pool.setter
    def pool(self, name: str) -> None:
        if self._phase != "request_filter":
            raise RuntimeError("ctx.pool can only be set in request_filter")
        if not isinstance(name, str):
            raise TypeError(f"ctx.pool is a pool's name; got {name!r}")
        if name not in self._lf.pools:
            raise ValueError(f"ctx.pool = {name!r}: there is no such pool; pools are: {', '.join(self._lf.pools)}")
        self._pool, self._pool_set = name, True

    @property
    def server(self) -> str | None:
        return str(self._server.name) if self._server is not None else None

    @property
    def server_address(self) -> str | None:
        return str(self._server.address) if self._server is not None else None

    @property
    def vars(self) -> dict[str, Any]:
        if self._vars is None:
            self._vars = {}
        return self._vars

    @property
    def tries(self) -> int:
        return int(self._ex.tries)

    def __repr__(self) -> str:
        return f"<Context {self.listener} {self.client_ip} pool={self._pool} server={self.server}>"
