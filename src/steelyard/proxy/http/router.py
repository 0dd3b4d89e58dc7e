"""L7 routing: pick the pool for a request from its host, path and headers.

Rules: routes are tried in order and the first whose every given condition
matches wins; with no match the listener's default pool is used.
- ``host`` is compared without its port and case-insensitively; ``*.example.test``
  matches any name ending in ``.example.test`` (one or more labels), not the apex.
- ``path_prefix`` is a byte-wise prefix of the request target.
- ``header`` matches when some header of that name (case-insensitive) has exactly
  that value.

A listener without routes answers ``route`` with its default pool at the cost of
one attribute read; nothing is compiled per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Route(Generic[T]):
    __slots__ = ("host", "suffix", "path_prefix", "header_name", "header_value", "target", "max_body_size", "limiter")

    def __init__(
        self,
        target: T,
        host: str | None = None,
        path_prefix: str | None = None,
        header: tuple[str, str] | None = None,
    ) -> None:
        self.target = target
        self.max_body_size: int | None = None  # this route's own limits (``build_router`` sets them)
        self.limiter: Any = None
        self.host: bytes | None = None
        self.suffix: bytes | None = None
        if host is not None:
            h = host.lower().encode()
            if h.startswith(b"*."):
                self.suffix = h[1:]  # ".example.test"
            else:
                self.host = h
        self.path_prefix = path_prefix.encode() if path_prefix is not None else None
        self.header_name = header[0].lower().encode() if header else None
        self.header_value = header[1].encode() if header else None

    def matches(self, host: bytes, path: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        if self.host is not None and host != self.host:
            return False
        if self.suffix is not None and not (host.endswith(self.suffix) and len(host) > len(self.suffix)):
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        if self.header_name is not None:
            name, value = self.header_name, self.header_value
            for hname, hvalue in headers:  # names as received: compare lower-cased
                if hvalue == value and hname.lower() == name:
                    break
            else:
                return False
        return True


def normalize_host(raw: bytes) -> bytes:
    """``Example.Test:8080`` -> ``example.test``; ``[::1]:80`` -> ``[::1]``."""
    if raw.startswith(b"["):
        end = raw.find(b"]")
        return raw[: end + 1].lower() if end > 0 else raw.lower()
    colon = raw.rfind(b":")
    if colon >= 0:
        raw = raw[:colon]
    return raw.lower().rstrip(b".")


class Router(Generic[T]):
    """First-match router over compiled routes, falling back to ``default``."""

    __slots__ = ("routes", "default", "limited")

    def __init__(self, default: T, routes: Sequence[Route[T]] = ()) -> None:
        self.default = default
        self.routes = tuple(routes)
        # some route has limits of its own: the dispatcher asks ``match`` (the route), not ``route``
        self.limited = any(r.max_body_size is not None or r.limiter is not None for r in self.routes)

    def match(self, host: bytes, path: bytes, headers: Sequence[tuple[bytes, bytes]]) -> Route[T] | None:
        """The first route that matches, or None (the default pool)."""
        h = normalize_host(host)
        for r in self.routes:
            if r.matches(h, path, headers):
                return r
        return None

    def route(self, host: bytes, path: bytes, headers: Sequence[tuple[bytes, bytes]]) -> T:
        if not self.routes:
            return self.default
        h = normalize_host(host)
        for r in self.routes:
            if r.matches(h, path, headers):
                return r.target
        return self.default


def build_router(listener: Any, targets: dict[str, T]) -> Router[T]:
    """Compile a listener config's routes against ``targets`` (pool name -> target)."""
    routes = []
    for r in listener.routes:
        route = Route(
            targets[r.pool],
            host=r.host,
            path_prefix=r.path_prefix,
            header=(r.header.name, r.header.value) if r.header else None,
        )
        route.max_body_size = getattr(r, "max_body_size", None)
        rl = getattr(r, "rate_limit", None)
        if rl is not None:
            from ...core.ratelimit import TokenBuckets

            route.limiter = TokenBuckets(rl.rate, rl.bucket_size, rl.max_clients)
        routes.append(route)
    return Router(targets[listener.pool], routes)
