"""One request/response exchange as the downstream side parses it and the upstream side answers it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...core.model import Server
    from ..pool import PoolRuntime
    from .upstream import UpstreamConnection


# RFC 9110 section 9.2.2: only these may be retried automatically
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


class Exchange:
    """Mutable record of one request in flight; lives from the request line to the last response byte.

    ``pending`` holds request bytes (already framed for the server) not yet written
    to an upstream connection: body bytes that arrive before the connection is
    ready, or the whole body of a pipelined request that waits its turn.
    """

    __slots__ = (
        "method", "url", "http11", "keep_alive", "host", "headers", "parts", "tokens",
        "upgrade", "chunked", "clen", "xff", "bad", "head", "pending", "pending_size",
        "request_done", "conn", "server", "pool", "balancer", "t_begin", "t_start", "t_head",
        "dead",
    )  # fmt: skip

    def __init__(self, t_begin: float) -> None:
        self.method = b""
        self.url = b""
        self.http11 = True
        self.keep_alive = True
        self.host: bytes | None = None
        self.headers: list[tuple[bytes, bytes]] = []  # (lower-cased name, value), as received
        self.parts: list[bytes] = []  # forwarded headers, flat: name, ": ", value, CRLF
        self.tokens: list[bytes] | None = None  # Connection header tokens
        self.upgrade: bytes | None = None  # Upgrade header value of an upgrade request
        self.chunked = False
        self.clen: bytes | None = None
        self.xff: bytes | None = None
        self.bad: str | None = None  # why the request must be refused, if it must
        self.head = b""
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.request_done = False
        self.conn: UpstreamConnection | None = None
        self.server: Server | None = None
        self.pool: PoolRuntime | None = None
        self.balancer: Any = None
        self.t_begin = t_begin
        self.t_start = 0.0
        self.t_head = 0.0
        self.dead = False  # the client went away

    @property
    def replayable(self) -> bool:
        """Safe to send again on a fresh connection: no body was (or will be) streamed."""
        return (
            self.method in IDEMPOTENT
            and not self.chunked
            and (self.clen is None or self.clen == b"0")
            and self.upgrade is None
        )
