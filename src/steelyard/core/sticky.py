"""Session persistence logic, pure: the signed sticky cookie and the stick table.

``CookieCodec`` (balancer-inserted cookie, HAProxy's ``cookie ... insert``):
- A value is ``base64url(server_id | issued | seen | mac)``: ``server_id`` is an opaque
  8-byte HMAC of the server's name (clients learn nothing about server names or addresses),
  ``issued`` / ``seen`` are whole seconds of the injected wall clock, ``mac`` is the first
  16 bytes of HMAC-SHA256 over the rest with the secret.
- ``decode`` returns ``None`` for anything it did not sign itself (wrong length, bad base64,
  a MAC that does not match, compared in constant time), for a cookie older than
  ``max_age`` since it was issued, and for one not seen for ``idle`` (0: no such limit).
  A forged or stale value is never trusted: the caller picks afresh and re-issues.
- A cookie in use is refreshed (re-issued with a new ``seen``, the same ``issued``) once its
  ``seen`` is older than a quarter of ``idle``, so idle expiry holds without a Set-Cookie
  on every response.

``StickTable`` (HAProxy's ``stick-table``, keyed on the client address):
- At most ``size`` entries; inserting beyond that evicts the least recently used one.
- An entry not looked up or stored for ``expire`` seconds is gone (checked on lookup,
  and the oldest entries are purged as new ones are stored, a bounded amount per call).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections import OrderedDict
from collections.abc import Callable

_BODY = struct.Struct(">8sII")  # server id, issued, seen
_MAC_LEN = 16
_RAW_LEN = _BODY.size + _MAC_LEN
PURGE_PER_CALL = 8  # expired entries a ``put`` removes at most (bounded work per request)


class CookieCodec:
    """Encode and verify the sticky cookie (see the module docstring)."""

    __slots__ = ("secret", "clock", "max_age", "idle", "_ids")

    def __init__(self, secret: bytes, *, clock: Callable[[], float], max_age: float = 0.0, idle: float = 0.0) -> None:
        if len(secret) < 16:
            raise ValueError("the sticky cookie secret must be at least 16 bytes")
        self.secret = secret
        self.clock = clock
        self.max_age = max_age
        self.idle = idle
        self._ids: dict[str, bytes] = {}

    def server_id(self, name: str) -> bytes:
        """The opaque id of the server called ``name`` (stable for one secret)."""
        sid = self._ids.get(name)
        if sid is None:
            sid = self._ids[name] = hmac.new(self.secret, b"server:" + name.encode(), hashlib.sha256).digest()[:8]
        return sid

    def encode(self, name: str, issued: int | None = None) -> str:
        now = int(self.clock())
        body = _BODY.pack(self.server_id(name), now if issued is None else issued, now)
        mac = hmac.new(self.secret, body, hashlib.sha256).digest()[:_MAC_LEN]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")

    def decode(self, value: str | bytes) -> tuple[bytes, int, int] | None:
        """``(server_id, issued, seen)`` of a valid, fresh cookie; None otherwise."""
        if isinstance(value, str):
            value = value.encode("latin-1")
        if len(value) != 43:  # base64url of 36 bytes, unpadded
            return None
        try:
            raw = base64.urlsafe_b64decode(value + b"=")
        except ValueError:
            return None
        if len(raw) != _RAW_LEN:
            return None
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, hmac.new(self.secret, body, hashlib.sha256).digest()[:_MAC_LEN]):
            return None
        sid, issued, seen = _BODY.unpack(body)
        now = self.clock()
        if self.max_age and now - issued > self.max_age:
            return None
        if self.idle and now - seen > self.idle:
            return None
        return sid, issued, seen

    def needs_refresh(self, seen: int) -> bool:
        return bool(self.idle) and self.clock() - seen > self.idle / 4


class StickTable:
    """Client key -> server name, LRU-bounded, with idle expiry (see the module docstring)."""

    __slots__ = ("size", "expire", "clock", "entries")

    def __init__(self, size: int, expire: float, *, clock: Callable[[], float]) -> None:
        if size < 1:
            raise ValueError("a stick table holds at least one entry")
        self.size, self.expire, self.clock = size, expire, clock
        self.entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now - entry[1] > self.expire:
            del self.entries[key]
            return None
        self.entries[key] = (entry[0], now)
        self.entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, server: str) -> None:
        now = self.clock()
        entries = self.entries
        entries[key] = (server, now)
        entries.move_to_end(key)
        for _ in range(PURGE_PER_CALL):  # the oldest first: stop at the first live one
            oldest = next(iter(entries.items()))
            if now - oldest[1][1] <= self.expire:
                break
            del entries[oldest[0]]
        while len(entries) > self.size:
            entries.popitem(last=False)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)
