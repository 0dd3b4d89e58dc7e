"""``[[pool]]``: a pool, its servers, and its availability features: active health checks and
outlier ejection.

Health and outlier are optional tables of a pool (``[pool.health]``, ``[pool.outlier]``); without them a
pool trusts every server and only retries a failed request elsewhere. Invariants:

- ``expect_status`` is parsed once into inclusive ranges (``HealthConfig.status_ranges``).
- Defaults follow what HAProxy and Envoy users know: rise 2, fall 3, interval 2s (HAProxy);
  5 consecutive gateway failures eject for 30s, growing per ejection (Envoy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from ..core.balancing import BalancerOptions, resolve_algorithm
from ..units import show_value, split_host_port
from .base import TOKEN, Address, Bool, Duration, Float, Int, Name, _check, _duplicates, _matching, _Model, _Problems
from .listener import FilePath
from .sticky import StickyConfig

_STATUS_LIST = re.compile(r"\s*\d{3}(\s*-\s*\d{3})?\s*(,\s*\d{3}(\s*-\s*\d{3})?\s*)*")


def status_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """``"200-399, 404"`` -> ((200, 399), (404, 404)); ``ValueError`` names what is wrong."""
    if not _STATUS_LIST.fullmatch(text):
        raise ValueError(f'expected status codes or ranges, e.g. "200-399" or "200, 204"; got {show_value(text)}')
    ranges = []
    for item in text.split(","):
        lo, _, hi = item.partition("-")
        low, high = int(lo), int(hi or lo)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"a status range must lie within 100-599 and run low to high; got {item.strip()!r}")
        ranges.append((low, high))
    return tuple(ranges)


def _valid_statuses(text: str) -> str:
    status_ranges(text)
    return text


class HealthConfig(_Model):
    """``[pool.health]``: an active check of every server of the pool, once per balancer."""

    type: Literal["http", "tcp"] = "http"
    """http: a GET whose status (and body) is checked; tcp: a connect."""
    path: Annotated[str, Field(pattern=r"^/\S*$")] = "/healthz"
    """The path the http check requests."""
    host: Annotated[str, Field(min_length=1, pattern=r"^\S+$")] | None = None
    """The Host header of the check; default: the server's address."""
    expect_status: Annotated[str, AfterValidator(_valid_statuses)] = "200-399"
    """Statuses that pass: codes and ranges, \"200-399\" or \"200, 204\"."""
    expect_body: Annotated[str, Field(min_length=1)] | None = None
    """A substring the response body must contain."""
    interval: Duration = 2.0
    """Time between checks of a healthy server."""
    fail_interval: Duration | None = None
    """Time between checks while a server is failing or down; default: interval / 2."""
    timeout: Duration = 1.0
    """A check gets no answer within this: it fails."""
    rise: Annotated[Int, Field(ge=1, le=100)] = 2
    """Consecutive passes that bring a server back."""
    fall: Annotated[Int, Field(ge=1, le=100)] = 3
    """Consecutive failures that take a server down."""
    jitter: Annotated[Float, Field(ge=0.0, le=0.5)] = 0.1
    """Each wait varies by up to ± this fraction."""

    @model_validator(mode="after")
    def _tcp_has_no_http_keys(self) -> HealthConfig:
        if self.type == "tcp":
            given = [k for k in ("host", "expect_body") if getattr(self, k) is not None]
            given += [k for k in ("path", "expect_status") if k in self.model_fields_set]
            if given:
                raise ValueError(f'{", ".join(given)} only apply to type = "http" checks')
        return self

    @property
    def status_ranges(self) -> tuple[tuple[int, int], ...]:
        return status_ranges(self.expect_status)

    @property
    def failing_interval(self) -> float:
        return self.fail_interval if self.fail_interval is not None else self.interval / 2


class OutlierConfig(_Model):
    """``[pool.outlier]``: passive health. Consecutive failures seen on real traffic eject a server."""

    consecutive_failures: Annotated[Int, Field(ge=0)] = 5
    """Connect failures, resets and timeouts in a row that eject a server; 0: off."""
    consecutive_5xx: Annotated[Int, Field(ge=0)] = 0
    """When > 0: this many 5xx responses in a row eject a server too."""
    base_ejection: Duration = 30.0
    """The first ejection's length; the n-th lasts n times as long."""
    max_ejection: Duration = 300.0
    """The longest ejection."""
    max_ejection_percent: Annotated[Int, Field(ge=0, le=100)] = 50
    """At most this percent of the pool is ejected at once (one server may always go)."""

    @model_validator(mode="after")
    def _ordered(self) -> OutlierConfig:
        if self.max_ejection < self.base_ejection:
            raise ValueError("max_ejection must not be shorter than base_ejection")
        return self


# --- servers and pools ------------------------------------------------------------

HashOn = Annotated[
    str, _matching(rf"client_ip|uri|(header|cookie):{TOKEN}", "expected client_ip, uri, header:NAME or cookie:NAME")
]
Algorithm = Annotated[str, _check(resolve_algorithm)]  # its ValueError messages are written for users


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
    """Requests (TCP connections, UDP flows) in flight to this server at most; default: the pool's
    max_conns."""
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
    """Requests (TCP connections, UDP flows) in flight per server at most (servers may set their own);
    beyond it they queue."""
    max_queue: Annotated[Int, Field(ge=0)] = 100
    """Requests (connections, new flows) of this pool waiting for a server below max_conns at most
    (more: 503 with Retry-After; TCP clients are closed, datagrams dropped)."""
    queue_timeout: Duration = 5.0
    """How long a queued request (connection, new flow) waits for a server below max_conns (then as
    max_queue)."""
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
