"""``[[listener]]``: a listener, its routes (``[[listener.route]]``, L7) or SNI routes (L4), and
its hardening keys: sizes, rate limits and TLS (``[listener.tls]``), as frozen models.

Keys that only mean something in some modes are listed in ``_MODE_KEYS``; the cross-section
checks (model.py) refuse them elsewhere, by key path. ``idle_timeout`` defaults per mode.
Invariants (those of ``config``): frozen models, unknown keys refused, strict types, errors that
name the key path. Sizes are an integer number of bytes or a string with a unit ("64KiB",
"10MB", "1m"; k/m/g are powers of 1024, as in nginx); a size is never zero or negative.
TLS certificate and key files are checked to exist when the config is read, and loaded
(so a wrong pair or a key that does not match is an error naming the key path) when the
listener starts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, model_validator

from ..proxy.http.filterload import resolve_filter
from ..units import format_duration
from ..units import show_value as _show
from .base import (
    TOKEN,
    Bind,
    Bool,
    Duration,
    Float,
    Int,
    Name,
    _check,
    _matching,
    _Model,
    _Problems,
    bind_host,
    bind_port,
)

_SIZE = re.compile(r"(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?", re.IGNORECASE)
_SIZE_UNIT = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: Any) -> int:
    """``4096`` / ``"64KiB"`` / ``"10MB"`` / ``"1m"`` -> bytes; ``ValueError`` says what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f'expected a size in bytes, or with a unit (KiB, MB, k, m, g), e.g. "10MB"; got {_show(value)}'
            )
        n = int(match[1]) * _SIZE_UNIT[(match[2] or "").lower()]
    if n <= 0:
        raise ValueError(f"a size must be greater than zero; got {_show(value)}")
    return n


Size = Annotated[int, BeforeValidator(parse_size)]


def _existing_file(text: Any) -> Any:
    if isinstance(text, str) and not Path(text).is_file():
        raise ValueError(f"no such file: {_show(text)}")
    return text


FilePath = Annotated[str, BeforeValidator(_existing_file)]


class RateLimitConfig(_Model):
    """A token bucket per client address: ``rate`` requests per second, bursts of ``burst``."""

    rate: Annotated[Float, Field(gt=0)]
    """Requests per second allowed per client address."""
    burst: Annotated[Int, Field(ge=1)] | None = None
    """Default: max(1, rate)."""
    max_clients: Annotated[Int, Field(ge=1)] = 65536
    """Buckets kept (least recently used dropped)."""

    @property
    def bucket_size(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.rate))


class CertificateConfig(_Model):
    """One certificate chain and its key; ``names`` (SNI host names, ``*.suffix`` allowed)
    default to none: then the certificate answers only as the default."""

    cert: FilePath
    """Certificate chain file (PEM)."""
    key: FilePath
    """Private key file (PEM)."""
    names: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """The SNI names this certificate answers (\"*.suffix\" allowed); none: only as the default."""


class TlsConfig(_Model):
    """TLS termination: ``cert``/``key`` is the default certificate; ``certificate`` adds more,
    chosen by the client's SNI name (exact name first, then ``*.suffix``, then the default)."""

    cert: FilePath | None = None
    """Default certificate chain file (PEM)."""
    key: FilePath | None = None
    """Its private key file (PEM)."""
    certificates: tuple[CertificateConfig, ...] = Field(default=(), alias="certificate")
    """More certificates, chosen by the client's SNI name."""
    min_version: Annotated[str, Field(pattern=r"^1\.[23]$")] = "1.2"
    """Lowest TLS version accepted: \"1.2\" or \"1.3\"."""

    @model_validator(mode="after")
    def _has_certificate(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if self.cert is None and not self.certificates:
            raise ValueError("a TLS listener needs cert and key (or [[listener.tls.certificate]] entries)")
        return self


# --- filters ----------------------------------------------------------------------

FilterUse = Annotated[str, _check(resolve_filter)]  # (imports the class: `check` names a missing one)


class FilterConfig(_Model):
    """A filter (``steelyard.filters``): the class ``use`` names, built with ``options``. Filters
    run in the order written, a listener's before its matched route's."""

    use: FilterUse
    """A built-in filter (redirect_https, rate_limit) or your class as \"package.module:ClassName\" (importable by the
    balancer: installed, or on PYTHONPATH)."""
    options: Mapping[str, Any] = Field(default_factory=dict)
    """Given to the class as a dict (its __init__ may refuse them: the error names this key)."""
    _filter: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build(self) -> FilterConfig:
        cls = resolve_filter(self.use)
        try:
            self._filter = cls(copy.deepcopy(dict(self.options)))
        except (Exception, SystemExit) as exc:  # (whatever the class raises: said by key path, not a traceback)
            why = f"missing option {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
            raise _Problems([(("options",), f"{self.use}: {why or type(exc).__name__}")]) from None
        return self

    @property
    def filter(self) -> Any:
        """The instance the listener runs (built when the configuration was read)."""
        return self._filter


# --- listeners and their routes ---------------------------------------------------

MODES = ("http", "tcp", "udp")


def _check_mode(value: Any) -> Any:
    if value not in MODES:
        raise ValueError(f"unknown mode {_show(value)}; choose one of {', '.join(MODES)}")
    return value


RouteHost = Annotated[
    str,
    AfterValidator(lambda text: text.lower().rstrip(".")),  # as the router compares
    _matching(r"(\*\.)?[^\s/:*]+", 'expected a host name, or "*.suffix" for any subdomain'),
]
PathPrefix = Annotated[str, _matching(r"/\S*", 'expected a path prefix starting with "/"')]
HeaderName = Annotated[str, _matching(TOKEN, "expected a header name")]


class HeaderMatch(_Model):
    name: HeaderName
    """The request header's name."""
    value: str
    """The value it must have (exact, case-sensitive)."""


class SniRoute(_Model):
    """A tcp listener's route by the TLS server name its client asks for (passed through, not decrypted)."""

    name: Annotated[
        str,
        _matching(
            r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?",
            'expected a host name, or "*.suffix" for any name one label below it',
        ),
    ]
    """The TLS server name the client asks for: exact, or \"*.suffix\" for any name one label below it."""
    pool: str
    """Where such connections go."""


class RouteConfig(_Model):
    """An L7 route: every condition given must match; ``pool`` is where it sends."""

    host: RouteHost | None = None
    """The request's Host (port ignored) is this name, or ends in this suffix for \"*.suffix\"."""
    path_prefix: PathPrefix | None = None
    """The request path starts with this."""
    header: HeaderMatch | None = None
    """The request has this header with this value ({ name = \"X-Canary\", value = \"1\" })."""
    pool: str
    """Where matching requests go."""
    max_body_size: Size | None = None
    """Request body bytes on this route; more: 413 (the listener's still holds)."""
    rate_limit: RateLimitConfig | None = None
    """Per client address on this route: 429 with Retry-After."""
    filters: tuple[FilterConfig, ...] = ()
    """Filters for requests this route matches, after the listener's."""

    @model_validator(mode="after")
    def _has_condition(self) -> RouteConfig:
        if self.host is None and self.path_prefix is None and self.header is None:
            raise ValueError("a route needs at least one of host, path_prefix, header")
        return self


# Keys that only mean something in some modes; any other mode refuses them (by key path).
_MODE_KEYS = {
    "route": ("http",),
    "keepalive_timeout": ("http",),
    "request_timeout": ("http",),
    "idle_timeout": ("tcp", "udp"),
    "send_proxy": ("tcp",),
    "splice": ("tcp",),
    "per_datagram": ("udp",),
    "max_flows": ("udp",),
    "access_log": ("http",),
    "sni": ("tcp",),
    # hardening (config/listener.py, docs/security.md)
    "max_connections": ("http", "tcp"),
    "max_connections_per_client": ("http", "tcp"),
    "max_body_size": ("http",),
    "max_uri_length": ("http",),
    "max_header_count": ("http",),
    "min_body_rate": ("http",),
    "rate_limit": ("http",),
    "tls": ("http",),
    "redirect_https": ("http",),
    "https_port": ("http",),
    "filters": ("http",),
}
IDLE_DEFAULT = {"tcp": 3600.0, "udp": 30.0}  # a tunnel's idle limit (HAProxy's `timeout tunnel` style)


class ListenerConfig(_Model):
    """One listener. ``mode`` http is the L7 proxy; tcp and udp are the L4 relays (see
    ``_MODE_KEYS`` for the keys each mode takes; ``idle_timeout`` defaults per mode)."""

    name: Name
    """The listener's name (logs, metrics, the admin API)."""
    bind: Bind
    """The address to listen on: host:port or [v6]:port; port 0 picks a free one."""
    mode: Annotated[Literal["http", "tcp", "udp"], BeforeValidator(_check_mode)] = "http"
    """http: the L7 proxy; tcp and udp: the L4 relays."""
    pool: str
    """The pool requests go to when no route matches."""
    routes: tuple[RouteConfig, ...] = Field(default=(), alias="route")
    """Routes tried in order; the first whose every condition matches picks the pool."""
    keepalive_timeout: Duration = 60.0
    """Idle client keep-alive connections close after this."""
    request_timeout: Duration = 30.0
    """A request head (or a stalled request body) must arrive within this, else 408; a client that reads nothing of its
    response this long is dropped."""
    idle_timeout: Duration | None = None
    """A connection (tcp) or a flow (udp) with no traffic either way this long closes; default: 1h (tcp), 30s (udp)."""
    send_proxy: Literal["v1", "v2"] | None = None
    """Send a PROXY protocol header of this version first, so servers see the client's address."""
    splice: Bool = True
    """Relay with os.splice (zero-copy) where Linux has it; false: copy through Python."""
    per_datagram: Bool = False
    """Balance each datagram on its own, not each flow (stateless protocols such as DNS)."""
    max_flows: Annotated[Int, Field(ge=1)] = 65536
    """Flows kept at most; the least recently used one makes room."""
    sni: tuple[SniRoute, ...] = ()
    """Route TLS connections by the server name of their ClientHello (passed through, not decrypted)."""
    access_log: Annotated[str, Field(min_length=1)] | None = None
    """Write one JSON line per request to this file ("-": standard output)."""
    # hardening (docs/security.md): limits, rate limit, TLS termination
    max_connections: Annotated[Int, Field(ge=1)] | None = None
    """Open client connections at most; more are closed."""
    max_connections_per_client: Annotated[Int, Field(ge=1)] | None = None
    """Open client connections per client address at most; more are closed."""
    max_body_size: Size | None = None
    """Request body bytes; more: 413."""
    max_uri_length: Annotated[Int, Field(ge=16)] = 8192
    """Request target bytes; more: 414."""
    max_header_count: Annotated[Int, Field(ge=1)] = 100
    """Request header fields; more: 431."""
    min_body_rate: Size | None = None
    """Bytes/s a request body must average (after 1s); else 408."""
    rate_limit: RateLimitConfig | None = None
    """Requests per client address: 429 with Retry-After."""
    tls: TlsConfig | None = None
    """Terminate TLS (certificates chosen by SNI)."""
    redirect_https: Bool = False
    """Answer every request with a 308 to the https:// URL."""
    https_port: Annotated[Int, Field(ge=1, le=65535)] = 443
    """Where redirect_https sends (443: not in the URL)."""
    filters: tuple[FilterConfig, ...] = ()
    """Filters for every request of this listener, in order (after redirect_https and rate_limit, which are built-in
    filters)."""

    @model_validator(mode="before")
    @classmethod
    def _idle_default(cls, data: Any) -> Any:
        # (keys that do not fit the mode are refused by the cross checks, next to field errors)
        if isinstance(data, Mapping) and data.get("mode") in IDLE_DEFAULT and "idle_timeout" not in data:
            return {**data, "idle_timeout": format_duration(IDLE_DEFAULT[data["mode"]])}
        return data

    host, port = bind_host, bind_port
