"""TOML configuration -> a validated, frozen model.

``load_config(path)`` reads a file with stdlib ``tomllib`` and validates it with
pydantic v2; ``parse_config(text_or_dict)`` does the same for text or a dict
(tests, the admin API). Invariants:

- Every model is frozen and forbids unknown keys; collections are tuples, so a
  ``Config`` can be shared by reference with the data plane and never changes.
- Durations are strings with a unit ("150ms", "1.5s", "2m") and become float
  seconds; bare numbers are rejected so "30" is never silently ms or s.
- Addresses are ``host:port`` or ``[v6]:port``; the parsed ``host``/``port`` are
  exposed as properties. Only a listener's bind may use port 0 (ephemeral).
- Every problem found is reported at once, as ``ConfigError.errors``: a list of
  (key path, message) where the key path names items by their ``name``
  (``pool "app" → servers #1 → address``), falling back to a 1-based ``#index``.
- Checks across sections (unique names and binds, pool references) run on the
  raw input too, so they are reported alongside field errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from ..core.balancing import BalancerOptions, resolve_algorithm
from ..units import format_duration, split_host_port
from ..units import show_value as _show
from .admin import AdminConfig
from .base import (
    NAME_RULE,
    Bool,
    ConfigError,
    Duration,
    Float,
    Int,
    Loc,
    _check,
    _matching,
    _Model,
    _Problems,
    bind_host,
    bind_port,
    key_path,
    read_file,
    read_toml,
    translate,
)
from .cluster import ClusterConfig
from .dns import DnsConfig, RecordConfig
from .keepalived import KeepalivedConfig
from .listener import CertificateConfig, FilePath, RateLimitConfig, Size, TlsConfig
from .pool import HealthConfig, OutlierConfig
from .sticky import StickyConfig

MODES = ("http", "tcp", "udp")


def _check_mode(value: Any) -> Any:
    if value not in MODES:
        raise ValueError(f"unknown mode {_show(value)}; choose one of {', '.join(MODES)}")
    return value


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 9110 token: a header or cookie name

Address = Annotated[str, _check(split_host_port)]
Bind = Annotated[str, _check(partial(split_host_port, allow_port_zero=True))]
Name = Annotated[str, _matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*", NAME_RULE)]
RouteHost = Annotated[
    str,
    AfterValidator(lambda text: text.lower().rstrip(".")),  # as the router compares
    _matching(r"(\*\.)?[^\s/:*]+", 'expected a host name, or "*.suffix" for any subdomain'),
]
PathPrefix = Annotated[str, _matching(r"/\S*", 'expected a path prefix starting with "/"')]
HeaderName = Annotated[str, _matching(_TOKEN, "expected a header name")]
HashOn = Annotated[
    str, _matching(rf"client_ip|uri|(header|cookie):{_TOKEN}", "expected client_ip, uri, header:NAME or cookie:NAME")
]
Algorithm = Annotated[str, _check(resolve_algorithm)]  # its ValueError messages are written for users


# --- models ---------------------------------------------------------------------


class ServerConfig(_Model):
    """One upstream server; ``name`` defaults to the address."""

    address: Address
    """The server's address: host:port or [v6]:port."""
    weight: Annotated[Int, Field(ge=0, le=1000)] = 1
    """Its share of traffic relative to the pool's other servers (algorithms that weigh); 0: never picked."""
    name: Annotated[str, Field(min_length=1)] = ""
    """The server's name (logs, metrics, the admin API); default: its address."""
    backup: Bool = False
    """Used only while no primary server is usable."""
    max_conns: Annotated[Int, Field(ge=1)] | None = None
    """Requests in flight to this server at most; default: the pool's max_conns."""
    state: Literal["ready", "drain", "maint"] = "ready"
    """Its administrative state: ready; drain (no new requests, those in flight finish); maint (out of service)."""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "name" not in data and isinstance(data.get("address"), str):
            return {**data, "name": data["address"]}
        return data

    host = property(lambda self: split_host_port(self.address)[0], doc="the address's host (no brackets)")
    port = property(lambda self: split_host_port(self.address)[1], doc="the address's port")


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

    @model_validator(mode="before")
    @classmethod
    def _idle_default(cls, data: Any) -> Any:
        # (keys that do not fit the mode are refused by the cross checks, next to field errors)
        if isinstance(data, Mapping) and data.get("mode") in IDLE_DEFAULT and "idle_timeout" not in data:
            return {**data, "idle_timeout": format_duration(IDLE_DEFAULT[data["mode"]])}
        return data

    host, port = bind_host, bind_port


class PoolConfig(_Model):
    name: Name
    """The pool's name, as listeners, routes and DNS records refer to it."""
    algorithm: Algorithm = "round_robin"
    """A built-in algorithm (round_robin, weighted_round_robin, ip_hash, consistent_hash, least_conn, least_time,
    random, p2c) or package.module:ClassName."""
    hash_on: HashOn = "client_ip"
    """consistent_hash's key: client_ip, uri, header:NAME or cookie:NAME."""
    hash_balance_factor: Annotated[Float, Field(gt=1.0)] | None = None
    """Bounded-load consistent hashing: no server takes more than this times the mean load (ip_hash,
    consistent_hash)."""
    servers: tuple[ServerConfig, ...] = Field(min_length=1)
    """The pool's servers (at least one)."""
    connect_timeout: Duration = 2.0
    """A connection to a server must be established within this, else the next server is tried (504 when none)."""
    timeout: Duration = 30.0
    """Upstream response timeout, counted once the request is sent; also how long a server may stall mid-request or
    mid-response."""
    max_idle: Annotated[Int, Field(ge=0)] = 64
    """Idle keep-alive connections kept per server."""
    idle_timeout: Duration = 60.0
    """Idle upstream connections close after this."""
    ewma_decay: Duration = 10.0
    """least_time's EWMA time constant: how fast old response times are forgotten."""
    health: HealthConfig | None = None
    """Active health checks of every server (none: servers are trusted until traffic fails)."""
    outlier: OutlierConfig = OutlierConfig()
    """Passive health: ejection of servers failing on real traffic (on unless turned off)."""
    retries: Annotated[Int, Field(ge=0, le=10)] = 2
    """A failed try goes to another server, at most this many more times."""
    retry_budget: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.2
    """Retries of requests that may have reached a server, as a share of requests over the last second (at least 10 a
    second are always allowed)."""
    try_timeout: Duration | None = None
    """Per try: wait this long for a response head; default: timeout."""
    retry_header: Bool = False
    """Tell the client how many retries its response took (X-Steelyard-Retries)."""
    slow_start: Duration | None = None
    """A returning server's weight ramps up over this."""
    slow_start_floor: Annotated[Float, Field(gt=0.0, le=1.0)] = 0.1
    """Slow start begins at this fraction of the server's weight."""
    max_conns: Annotated[Int, Field(ge=1)] | None = None
    """Requests in flight per server at most (servers may set their own); beyond it requests queue."""
    max_queue: Annotated[Int, Field(ge=0)] = 100
    """Requests of this pool waiting for a server below max_conns at most (more: 503 with Retry-After)."""
    queue_timeout: Duration = 5.0
    """How long a queued request waits for a server below max_conns (then 503 with Retry-After)."""
    panic_threshold: Annotated[Int, Field(ge=0, le=100)] = 0
    """Percent: below this share of usable servers, balance over all ready servers rather than refuse."""
    sticky: StickyConfig | None = None
    """Session persistence: keep a client on the server it first got."""
    tls: Bool = False
    """Talk TLS to the servers (HTTP pools; docs/security.md)."""
    tls_verify: Bool = True
    """Check the servers' certificates (against tls_ca, else the system's CAs)."""
    tls_ca: FilePath | None = None
    """CA certificates (PEM) that server certificates are checked against; default: the system's."""
    tls_server_name: str | None = None
    """SNI and the name checked; default: the server's host."""

    @model_validator(mode="after")
    def _unique_servers(self) -> PoolConfig:
        problems = [
            *_duplicates("servers", "name", enumerate(s.name for s in self.servers)),
            *_duplicates("servers", "address", enumerate(s.address for s in self.servers)),
        ]
        if problems:
            raise _Problems(problems)
        return self

    def balancer_options(self) -> BalancerOptions:
        return BalancerOptions(
            hash_on=self.hash_on, hash_balance_factor=self.hash_balance_factor, ewma_decay=self.ewma_decay
        )


class Config(_Model):
    """The whole file. ``source`` is the path it was read from (never a user key)."""

    workers: Annotated[Int, Field(ge=1, le=32)] = 1
    """Worker processes sharing the listeners; more than 1 adds a control process (health checks, admin API, DNS)."""
    shutdown_grace: Duration = 10.0
    """On SIGTERM or SIGINT, requests in flight may finish for this long."""
    listeners: tuple[ListenerConfig, ...] = Field(alias="listener", min_length=1)
    """The listeners (at least one)."""
    pools: tuple[PoolConfig, ...] = Field(alias="pool", min_length=1)
    """The pools of servers (at least one)."""
    admin: AdminConfig | None = None
    """The admin listener: JSON API, /metrics and the dashboard (none: no admin listener)."""
    dns: tuple[DnsConfig, ...] = ()
    """Authoritative DNS zones answered from the pools' health."""
    cluster: ClusterConfig | None = None
    """Several balancers as one, sharing runtime state through Redis."""
    keepalived: KeepalivedConfig | None = None
    """A floating address held by one node at a time (the keepalived configuration steelyard writes)."""
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        return self._source

    @property
    def state_path(self) -> str | None:
        """Where runtime changes are kept: ``[admin] state_file``, else next to the config file."""
        if self.admin is None:
            return None
        if self.admin.state_file is not None:
            return self.admin.state_file
        return f"{self._source}.state.json" if self._source and self._source != "<string>" else None

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems = _cross_problems(self.model_dump(by_alias=True, exclude_unset=True))  # as written
        if problems:
            raise _Problems(problems)
        return self

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


def _duplicates(group: str, key: str, values: Iterable[tuple[int, Any]]) -> list[tuple[Loc, str]]:
    """A problem at ``(group, i, key)`` for each text value already seen earlier in ``values``."""
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, value in values:
        if not isinstance(value, str):
            continue  # missing or malformed: reported by field validation
        if value in first:
            problems.append(((group, i, key), f"duplicate {key} {_show(value)} (also {group} #{first[value] + 1})"))
        first.setdefault(value, i)
    return problems


def _items(data: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = data.get(key)
    return [(i, x) for i, x in enumerate(value) if isinstance(x, Mapping)] if isinstance(value, list | tuple) else []


def _bind_key(bind: Any) -> str | None:
    """Binds that would clash, compared as text; None for unparsable ones and port 0 (ephemeral)."""
    try:
        return bind.lower() if split_host_port(bind, allow_port_zero=True)[1] else None
    except (ValueError, AttributeError):
        return None


def _hashes_on_l7(pool: Mapping[str, Any]) -> bool:
    """The pool's algorithm would hash on a header, cookie or URI (built-ins other than
    consistent_hash never read ``hash_on``; a custom algorithm might)."""
    hash_on, algorithm = pool.get("hash_on", "client_ip"), pool.get("algorithm", "round_robin")
    return (
        isinstance(hash_on, str)
        and hash_on != "client_ip"
        and isinstance(algorithm, str)
        and (algorithm == "consistent_hash" or ":" in algorithm)
    )


def _cross_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks across sections, on raw (possibly invalid) input: shapes it does not know are skipped."""
    pools, listeners = _items(data, "pool"), _items(data, "listener")
    problems = [
        *_duplicates("pool", "name", ((i, p.get("name")) for i, p in pools)),
        *_duplicates("listener", "name", ((i, x.get("name")) for i, x in listeners)),
        *_duplicates(
            "listener", "bind", ((i, _bind_key(x.get("bind"))) for i, x in listeners if x.get("mode") != "udp")
        ),  # TCP and UDP ports are apart
        *_duplicates(
            "listener", "bind", ((i, _bind_key(x.get("bind"))) for i, x in listeners if x.get("mode") == "udp")
        ),
    ]
    for i, x in listeners:
        if (mode := x.get("mode", "http")) in MODES:
            problems += [
                (
                    ("listener", i, key),
                    f"only for mode {' or '.join(map(repr, modes))} listeners; this one is mode {mode!r}",
                )
                for key, modes in _MODE_KEYS.items()
                if key in x and mode not in modes
            ]
    problems += _duplicates("dns", "name", ((i, d.get("name", "dns")) for i, d in _items(data, "dns")))
    names = [p.get("name") for _, p in pools]
    by_name = {p.get("name"): p for _, p in pools if isinstance(p.get("name"), str)}
    for i, x in listeners:  # an L4 listener has no header, cookie or URI to hash on
        pool = by_name.get(x.get("pool")) if isinstance(x.get("pool"), str) else None
        if x.get("mode") in ("tcp", "udp") and pool is not None and _hashes_on_l7(pool):
            problems.append(
                (
                    ("listener", i, "pool"),
                    f"pool {_show(pool['name'])} hashes on {pool['hash_on']}, which a {x['mode']} listener "
                    'cannot see; use hash_on = "client_ip" (or another pool)',
                )
            )
        if x.get("mode") in ("tcp", "udp") and pool is not None and "sticky" in pool:
            problems.append(
                (
                    ("listener", i, "pool"),
                    f"pool {_show(pool['name'])} has [pool.sticky], which only http listeners honour",
                )
            )
    problems += _one_process_only(data, pools)
    if pools and all(isinstance(n, str) for n in names):  # else "no pool named" could be a false alarm
        refs = [(("listener", i), x) for i, x in listeners]
        refs += [(("listener", i, "route", j), r) for i, x in listeners for j, r in _items(x, "route")]
        refs += [(("listener", i, "sni", j), r) for i, x in listeners for j, r in _items(x, "sni")]
        refs += [
            (("dns", i, "record", j), r) for i, d in _items(data, "dns") for j, r in _items(d, "record") if "pool" in r
        ]
        problems += [
            ((*loc, "pool"), f"no pool named {_show(ref)}; pools are: {', '.join(names)}")
            for loc, x in refs
            if isinstance(ref := x.get("pool"), str) and ref not in names
        ]
    return problems


def _one_process_only(data: Mapping[str, Any], pools: list[tuple[int, Mapping[str, Any]]]) -> list[tuple[Loc, str]]:
    """What several worker processes cannot share (yet): a source stick table."""
    workers = data.get("workers", 1)
    if not isinstance(workers, int) or workers < 2:
        return []
    return [
        (
            ("pool", i, "sticky", "mode"),
            'mode "source" keeps its stick table in one process; with '
            f'workers = {workers} use mode = "cookie" (every worker reads the cookie) or workers = 1',
        )
        for i, p in pools
        if isinstance(p.get("sticky"), Mapping) and p["sticky"].get("mode") == "source"
    ]


# --- errors ---------------------------------------------------------------------

_KEYS_OF = {
    "": Config,
    "listener": ListenerConfig,
    "route": RouteConfig,
    "header": HeaderMatch,
    "pool": PoolConfig,
    "servers": ServerConfig,
    "health": HealthConfig,
    "outlier": OutlierConfig,
    "admin": AdminConfig,
    "sni": SniRoute,
    "dns": DnsConfig,
    "record": RecordConfig,
    "sticky": StickyConfig,
    "rate_limit": RateLimitConfig,
    "cluster": ClusterConfig,
    "tls": TlsConfig,
    "certificate": CertificateConfig,
    "keepalived": KeepalivedConfig,
}


# --- entry points ---------------------------------------------------------------


def parse_config(text_or_dict: str | Mapping[str, Any], source: str = "<string>") -> Config:
    """Validate TOML text or an already-parsed dict; raise ``ConfigError`` listing every problem."""
    data = read_toml(text_or_dict, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = translate(exc, data, _KEYS_OF)
        if isinstance(data, Mapping):  # field errors stop Config's own cross check: run it on the raw input
            cross = [(key_path(loc, data), msg) for loc, msg in _cross_problems(data)]
            errors += [e for e in cross if e not in errors]
        raise ConfigError(source, errors) from None
    config._source = source
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file; ``ConfigError`` names the file in every message."""
    return parse_config(read_file(path), str(path))
