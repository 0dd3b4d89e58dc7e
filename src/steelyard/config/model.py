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

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from ..units import show_value as _show
from ..units import split_host_port
from .admin import AdminConfig
from .base import (
    ConfigError,
    Duration,
    Int,
    Loc,
    _duplicates,
    _Model,
    _Problems,
    key_path,
    read_file,
    read_toml,
    translate,
)
from .cluster import ClusterConfig
from .dns import DnsConfig, RecordConfig
from .keepalived import KeepalivedConfig
from .listener import (
    _MODE_KEYS,
    MODES,
    CertificateConfig,
    FilterConfig,
    HeaderMatch,
    ListenerConfig,
    RateLimitConfig,
    RouteConfig,
    SniRoute,
    TlsConfig,
)
from .pool import HealthConfig, OutlierConfig, PoolConfig, ServerConfig
from .sticky import StickyConfig

# --- models ---------------------------------------------------------------------


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
    "filters": FilterConfig,
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
