"""Sans-IO pieces of the demo backend: request record, routing, the ``/bytes`` payload, response bytes.

Payload (stable across releases; tests and other languages can recompute it):
  PATTERN = sha256(SEED + be32(0)) || sha256(SEED + be32(1)) || ... || sha256(SEED + be32(2047))
  with SEED = b"steelyard-demo-bytes/" and be32 a 4-byte big-endian counter: 2048 * 32 = 65536 bytes.
  ``/bytes/N`` is the first N bytes of PATTERN repeated forever, i.e. byte k is PATTERN[k % 65536].
  BLOCK (1 MiB = 16 * PATTERN) is the unit the server writes, so no response ever builds N bytes.

Routing is a pure function of the request target (see backend.py for the route table). Response heads are
ASCII; the per-server constant lines (Server, X-Served-By) are encoded once, and the
Date value is re-rendered at most once per second.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import http
import json
import time

import httptools

SEED = b"steelyard-demo-bytes/"
PATTERN = b"".join(hashlib.sha256(SEED + i.to_bytes(4, "big")).digest() for i in range(2048))
BLOCK = PATTERN * 16

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"
OCTETS = b"application/octet-stream"

ECHO, HEALTH, BYTES, STATUS, CLOSE, SLEEP, ERROR, HEALTH_SET = range(8)
# prefix -> (kind, lowest, highest accepted value)
_PARAM_ROUTES = (
    (b"/bytes/", BYTES, 0, 10**15),
    (b"/status/", STATUS, 200, 599),
    (b"/sleep/", SLEEP, 0, 3_600_000),
    (b"/healthz/set/", HEALTH_SET, 200, 599),
)

_EMPTY_SHA256 = hashlib.sha256().hexdigest()
_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_NO_BODY = frozenset((204, 304))


@functools.lru_cache(maxsize=128)
def expected_bytes_sha256(n: int) -> str:
    """Hex sha256 of the first ``n`` bytes of the /bytes payload, hashed 1 MiB at a time (no n-byte buffer)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    h = hashlib.sha256()
    full, rest = divmod(n, len(BLOCK))
    for _ in range(full):
        h.update(BLOCK)
    h.update(memoryview(BLOCK)[:rest])
    return h.hexdigest()


def reason(code: int) -> str:
    return _REASONS.get(code, "Unknown")


def status_body(code: int) -> bytes | None:
    """Small text body for /status/CODE and errors; None where HTTP forbids a body (204, 304)."""
    if code in _NO_BODY:
        return None
    return b"%d %s\n" % (code, reason(code).encode("ascii"))


class Heads:
    """Builds response heads for one server name (validated: visible ASCII and spaces only)."""

    __slots__ = ("_date", "_fixed", "_second", "_status")

    def __init__(self, name: str) -> None:
        if not name or not all(" " <= c <= "~" for c in name):
            raise ValueError(f"backend name must be non-empty printable ASCII, got {name!r}")
        self._fixed = b"Server: steelyard-demo\r\nX-Served-By: " + name.encode("ascii") + b"\r\n"
        self._status: dict[int, bytes] = {}
        self._date = b""
        self._second = -1

    def build(
        self,
        code: int,
        ctype: bytes | None,
        length: int | None,
        *,
        chunked: bool = False,
        connection: bytes | None = None,
    ) -> bytes:
        line = self._status.get(code)
        if line is None:
            line = self._status[code] = b"HTTP/1.1 %d %s\r\n" % (code, reason(code).encode("ascii"))
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = b"Date: " + email.utils.formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        parts = [line, self._date, self._fixed]
        if ctype is not None:
            parts.append(b"Content-Type: " + ctype + b"\r\n")
        if chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif length is not None:
            parts.append(b"Content-Length: %d\r\n" % length)
        if connection is not None:
            parts.append(b"Connection: " + connection + b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


class Request:
    """One parsed request as the responder needs it; the body itself is only hashed (never kept)."""

    __slots__ = ("arg", "chunked", "headers", "keep_alive", "kind", "method", "nbytes", "sha", "target", "version")

    def __init__(self) -> None:
        self.method = b"GET"
        self.target: bytes | None = None  # None until the head is complete
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.nbytes = 0
        self.sha = None  # a sha256 object once the first body byte arrives
        self.kind = ECHO
        self.arg = 0
        self.chunked = False


def route(target: bytes) -> tuple[int, int, bool]:
    """(kind, numeric argument, chunked) for a request target; absolute-form targets are accepted.

    A malformed argument (/bytes/x, /status/99, ...) routes to STATUS 400 on a kept connection.
    """
    path, _, query = target.partition(b"?")
    if path[:1] != b"/":
        try:
            url = httptools.parse_url(target)
            path, query = url.path or b"/", url.query or b""
        except httptools.HttpParserInvalidURLError:
            return ECHO, 0, False
    if path == b"/healthz":
        return HEALTH, 0, False
    if path == b"/close":
        return CLOSE, 0, False
    for prefix, kind, lo, hi in _PARAM_ROUTES:
        if path.startswith(prefix):
            text = path[len(prefix) :]
            if text.isdigit() and len(text) <= 16 and lo <= int(text) <= hi:
                return kind, int(text), kind == BYTES and b"chunked=1" in query.split(b"&")
            return STATUS, 400, False
    return ECHO, 0, False


def echo_body(server: str, client: str, req: Request) -> bytes:
    return json.dumps(
        {
            "server": server,
            "method": req.method.decode("ascii"),
            "path": req.target.decode("latin-1"),
            "http_version": req.version,
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in req.headers],
            "client": client,
            "body_bytes": req.nbytes,
            "body_sha256": req.sha.hexdigest() if req.sha is not None else _EMPTY_SHA256,
        },
        separators=(",", ":"),
    ).encode("ascii")


def small_response(req: Request, server: str, client: str, health: int = 200) -> tuple[int, bytes | None, bytes | None]:
    """(status, content type, body) for every response except a /bytes body longer than PATTERN;
    ``health`` is the status /healthz answers with now.

    For HEAD /bytes/N with N > len(PATTERN) the body is cut short; it is never written, only the head is.
    """
    kind = req.kind
    if kind == HEALTH:
        return health, TEXT, b"ok\n" if health < 400 else b"failing\n"
    if kind == HEALTH_SET:
        return 200, TEXT, b"/healthz now answers %d\n" % req.arg
    if kind == STATUS or kind == ERROR:
        body = status_body(req.arg)
        return req.arg, (TEXT if body is not None else None), body
    if kind == BYTES:
        return 200, OCTETS, PATTERN[: req.arg]
    return 200, JSON, echo_body(server, client, req)
