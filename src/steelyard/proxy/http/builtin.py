"""Built-in filters: the listener policies that answer instead of forwarding, on the same phases
as users' filters (``use = "redirect_https"`` / ``"rate_limit"``, or the listener keys of the
same names, which put them first in the listener's chain).

Their answers are those the guard gave before they were filters (docs/security.md): a 308 to the
https URL, a 429 with Retry-After; the connection stays open when no request body is left unread.
They read the exchange directly where the public view would copy (the client's address as
the bytes the buckets are keyed by, the sweep's clock).
"""

from __future__ import annotations

from typing import Any

from ...core.ratelimit import TokenBuckets
from ...filters import Context, Filter, Request, Response
from .guard import https_location

TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _number(options: dict[str, Any], key: str, default: Any, *, low: float, integer: bool) -> Any:
    value = options.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < low:
        raise ValueError(f"option {key!r} must be {'an integer' if integer else 'a number'} ≥ {low:g}; got {value!r}")
    return value


def _only(options: dict[str, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))}; the options are {', '.join(keys)}")


class RedirectHttps(Filter):
    """Answer every request with a 308 to the same URL under https: the Host's name without
    its port, then ``https_port`` (option, default 443; left out of the URL when 443)."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        _only(options, ("https_port",))
        self.port = _number(options, "https_port", 443, low=1, integer=True)
        if self.port > 65535:
            raise ValueError(f"option 'https_port' must be ≤ 65535; got {self.port}")

    def request_filter(self, req: Request, ctx: Context) -> Response:
        ex = req._ex
        host = ex.host or ctx._down.L.host.encode()  # (an HTTP/1.0 request without Host: the listener's)
        location = https_location(host, ex.url, self.port).decode("latin-1")
        return Response(308, {"Location": location, **TEXT}, "steelyard: this listener serves https only.\n")


class RateLimit(Filter):
    """A token bucket per client address: ``rate`` requests per second, bursts of ``burst``
    (default max(1, rate)), ``max_clients`` buckets kept (least recently used dropped; default
    65536). Past it: 429 with Retry-After (whole seconds until a token is there)."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        _only(options, ("rate", "burst", "max_clients"))
        if "rate" not in options:
            raise ValueError("option 'rate' (requests per second per client address) is required")
        rate = _number(options, "rate", None, low=0, integer=False)
        if rate <= 0:
            raise ValueError(f"option 'rate' must be > 0; got {rate!r}")
        burst = _number(options, "burst", max(1, int(rate)), low=1, integer=True)
        clients = _number(options, "max_clients", 65536, low=1, integer=True)
        self.buckets = TokenBuckets(rate, burst, clients)

    def request_filter(self, req: Request, ctx: Context) -> Response | None:
        down = ctx._down
        wait = self.buckets.take(down.ip, down.L.now)
        if not wait:
            return None
        retry = {"Retry-After": str(self.buckets.retry_after(wait)), **TEXT}
        return Response(429, retry, "steelyard: too many requests; try again later.\n")
