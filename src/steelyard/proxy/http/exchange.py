"""One request/response exchange as the downstream side parses it and the upstream side answers it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..lease import Lease
from . import headers as H
from .guard import CHECK

if TYPE_CHECKING:
    from ...core.model import Server
    from .phases import Run
    from .upstream import UpstreamConnection

# RFC 9110 section 9.2.2: only these may be retried automatically
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


class More:
    """The part of an ``Exchange`` that only some requests need (``Exchange.extra`` creates it)."""

    __slots__ = ("tries", "tried", "early", "early_size", "body_size", "max_body", "limiter", "filters")

    def __init__(self) -> None:
        self.tries = 0  # retries so far (0 on the first try)
        self.tried: tuple[Server, ...] = ()  # servers that failed it
        self.early: list[bytes] | None = None  # bytes after an upgrade request, held back until the 101
        self.early_size = 0
        self.body_size = 0  # request body bytes received so far (max_body_size, min_body_rate)
        self.max_body = 0  # its route's max_body_size, when lower than the listener's (0: none)
        self.limiter: Any = None  # the route's rate limiter that refused it (for Retry-After)
        self.filters: Run | None = None  # its filter phases' state (a listener with filters: ``phases``)


class Exchange(Lease):
    """Mutable record of one request in flight; lives from the request line to the last response byte.
    It is the lease on the server picked for it (``proxy.lease``: in flight, outcome, passive health).

    ``pending`` holds request bytes (already framed for the server) not yet written
    to an upstream connection: body bytes that arrive before the connection is
    ready, or the whole body of a pipelined request that waits its turn.
    """

    __slots__ = (
        "method", "url", "http11", "keep_alive", "host", "headers", "parts", "tokens", "connection_header",
        "upgrade", "chunked", "clen", "xff", "refuse", "head", "pending", "pending_size",
        "request_done", "conn", "t_begin", "t_sent", "set_cookie", "sticky", "specials", "more",
    )  # fmt: skip

    def __init__(self, t_begin: float) -> None:
        self.method = b""
        self.url = b""
        self.http11 = True
        self.keep_alive = True
        self.host: bytes | None = None
        # (name, value) as received, names not lower-cased; kept only when routes or the
        # hash key need them (``HttpListener.keep_headers``)
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []  # forwarded headers, flat: name, ": ", value, CRLF
        self.tokens: list[bytes] | None = None  # Connection header tokens
        self.connection_header = False  # a Connection or Proxy-Connection header came
        self.upgrade: bytes | None = None  # Upgrade header value of an upgrade request
        self.chunked = False
        self.clen: bytes | None = None
        self.xff: bytes | None = None
        self.refuse = 0  # the status to refuse the request with, when it must be refused
        self.head = b""
        self.pending: list[bytes | bytearray] = []
        self.pending_size = 0
        self.request_done = False
        self.conn: UpstreamConnection | None = None
        # the lease's fields (``Lease.__init__``, inline): the server picked, the pool it was routed
        # to, the balancer's hook, when the server was taken, the final response head came
        # (taken only when ``on_done`` is set), its status, its size as the server sent it
        self.server: Server | None = None
        self.pool = None
        self.on_done = None
        self.t_start = self.t_head = 0.0
        self.status = self.resp_bytes = 0
        self.t_begin = t_begin
        self.t_sent = 0.0  # request fully written to the server (the response timeout starts)
        self.set_cookie: bytes | None = None  # a Set-Cookie line the response gets (sticky pools)
        self.sticky: bytes | None = None  # the sticky cookie's value, once taken from the request
        self.specials = 0  # 4 per special header field other than Host (towards max_header_count)
        self.more: More | None = None  # what only some requests need (a body, an upgrade, a retry)

    def extra(self) -> More:
        """The fields only requests with a body, an upgrade or a retry use (created on first need:
        most requests never pay for them)."""
        more = self.more
        if more is None:
            more = self.more = More()
        return more

    @property
    def tries(self) -> int:
        """Retries so far (0 on the first try)."""
        return 0 if self.more is None else self.more.tries

    def special_header(self, code: int, value: bytes) -> None:
        """Take in a request header ``headers.REQUEST_SPECIAL`` names, other than Host
        (the parser's callback forwards ordinary headers and handles Host itself)."""
        self.specials += 4  # (as many as one header takes in ``parts``)
        if code == H.CONTENT_LENGTH:
            if self.clen is not None and self.clen != value:
                self.refuse = 400  # conflicting Content-Length headers
            # (llhttp accepts only digits here) forwarded canonically: "007" -> "7"
            self.clen = value if value[:1] != b"0" or value == b"0" else b"%d" % int(value)
            self.refuse = self.refuse or CHECK  # the guard compares it to max_body_size
        elif code == H.TRANSFER_ENCODING:
            # steelyard forwards only plain chunked and answers other codings that end in
            # chunked (gzip, chunked) with 501
            self.chunked = True
            coding = value.strip().lower()
            if coding != b"chunked":  # not final chunked: no length (RFC 9112 section 6.3), 400
                status = 501 if coding.rpartition(b",")[2].strip() == b"chunked" else 400
                self.refuse = self.refuse if self.refuse > 0 else status
            self.refuse = self.refuse or CHECK  # the guard refuses it in an HTTP/1.0 request
        elif code == H.XFF:
            self.xff = value if self.xff is None else self.xff + b", " + value
        elif code == H.CONNECTION:
            self.connection_header = True
            if value not in H.PLAIN_CONNECTION_VALUES and value.lower() not in H.PLAIN_CONNECTION_TOKENS:
                # several Connection headers make one list (RFC 9110 section 5.3)
                self.tokens = (self.tokens or []) + H.connection_tokens(value)
        elif code == H.UPGRADE:
            self.upgrade = value
        elif code == H.PROXY_CONNECTION:
            self.connection_header = True
        # (DROP: nothing to keep)

    def drop_upstream(self) -> bool:
        """Abandon this exchange's upstream connection (its response is unread, so it cannot
        be reused); True when some of that response already reached the client."""
        conn = self.conn
        if conn is None or conn.ex is not self:
            return False
        responded = conn.responded
        conn.ex = conn.down = None
        conn.transport.abort()  # type: ignore[union-attr]
        return responded

    def sent_bytes(self) -> int:
        """Bytes of the request as the server got them (head and body)."""
        return len(self.head) if self.more is None else len(self.head) + self.more.body_size

    def flush_pending(self, clock: Callable[[], float]) -> bool:
        """Write the buffered request bytes to this exchange's server connection, if it has one
        ready; once the whole request is out, the response timeout starts."""
        conn = self.conn
        if conn is None or conn.ex is not self:
            return False
        conn.transport.write(b"".join(self.pending))  # type: ignore[union-attr]
        self.pending.clear()
        self.pending_size = 0
        if self.request_done:
            self.t_sent = clock()
        return True

    def compact(self) -> None:
        """Join the buffered request bytes into one object: a body sent in tiny chunks would
        otherwise cost a list entry and an object header (~50 bytes) per chunk while it waits."""
        pending = self.pending
        if len(pending) > 1:
            first = pending[0]  # (a bytearray grows in place: joining all per read would be quadratic)
            joined = first if type(first) is bytearray else bytearray(first)
            for piece in pending[1:]:
                joined += piece
            pending.clear()
            pending.append(joined)

    def hold_early(self, data: bytes) -> int:
        """Keep bytes sent after an upgrade request until the 101; returns how many are held."""
        more = self.more
        more.early.append(data)  # type: ignore[union-attr]
        more.early_size += len(data) + 64  # type: ignore[union-attr]  # (an object per read: memory, not bytes)
        return more.early_size  # type: ignore[union-attr]

    @property
    def replayable(self) -> bool:
        """Safe to send again on a fresh connection: no body was (or will be) streamed."""
        return (
            self.method in IDEMPOTENT
            and not self.chunked
            and (self.clen is None or self.clen == b"0")
            and self.upgrade is None
        )

    def to_origin_form(self) -> None:
        """Absolute-form target (``GET http://host/path``): its authority replaces the Host
        header and the server gets the origin form (RFC 9112 section 3.2.2)."""
        url = self.url
        scheme_end = url.find(b"://")
        if scheme_end < 0 or url[:scheme_end].lower() not in (b"http", b"https"):
            return
        rest = url[scheme_end + 3 :]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        authority, target = rest[:cut], rest[cut:]
        authority = authority.rpartition(b"@")[2]  # userinfo is no part of the host
        self.url = target if target.startswith(b"/") else b"/" + target
        self.host = authority
        parts = self.parts
        kept = [x for i in range(0, len(parts), 4) if parts[i].lower() != b"host" for x in parts[i : i + 4]]
        kept += (b"Host", b": ", authority, b"\r\n")
        self.parts = kept

    def build_head(self, server: Server, forwarded: bytes, ip: bytes, scheme: bytes) -> None:
        """The request head as the server gets it: hop-by-hop headers gone, one framing
        header, forwarding headers added. ``forwarded`` is the connection's prebuilt
        X-Forwarded-For/-Proto block for requests that bring no X-Forwarded-For."""
        if not self.specials and self.host is not None:  # no special header but Host: the common case
            self.head = b"%b %b HTTP/1.1\r\n%bX-Forwarded-Host: %b\r\n%b\r\n" % (
                self.method,
                self.url,
                b"".join(self.parts),
                self.host,
                forwarded,
            )
            return
        parts = self.parts
        if self.tokens and not H.PLAIN_CONNECTION_TOKENS.issuperset(self.tokens):
            parts = H.strip_listed(parts, set(self.tokens) - {b"host"})  # Host is never hop-by-hop
        head = [self.method, b" ", self.url, b" HTTP/1.1\r\n", *parts]
        if self.host is None:
            head.append(b"Host: %b\r\n" % server.address.encode())
        else:
            head.append(b"X-Forwarded-Host: %b\r\n" % self.host)
        if self.xff is None:
            head.append(forwarded)
        else:
            head.append(b"X-Forwarded-For: %b, %b\r\nX-Forwarded-Proto: %b\r\n" % (self.xff, ip, scheme))
        if self.chunked:
            head.append(b"Transfer-Encoding: chunked\r\n")
        elif self.clen is not None:
            head.append(b"Content-Length: %b\r\n" % self.clen)
        if self.upgrade is not None:
            head.append(b"Connection: upgrade\r\nUpgrade: %b\r\n" % self.upgrade)
        head.append(b"\r\n")
        self.head = b"".join(head)

    def hash_key(self, kind: str, want: bytes) -> str | None:
        """The hash key for pools hashing on the URI, a header (``want`` lower-cased) or a cookie."""
        if kind == "uri":
            return self.url.decode("latin-1")
        if kind == "header":
            for name, value in self.headers:
                if name.lower() == want:
                    return value.decode("latin-1")
            return None
        for name, value in self.headers:  # cookie
            if name.lower() == b"cookie":
                for pair in value.split(b";"):
                    k, _, v = pair.strip().partition(b"=")
                    if k == want:
                        return v.decode("latin-1")
        return None
