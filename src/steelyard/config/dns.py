"""``[[dns]]``: authoritative DNS for one zone, answering from the pools' health.

Invariants:
- Names are absolute (ending in "."); a record name without the dot is taken relative to the
  zone ("app" in "example.test." is "app.example.test."). Every record lies inside its zone.
- A record either points at a pool (``pool``, with a ``policy``) or holds static ``values``
  of one ``type``; never both.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..dns.names import absolute
from ..units import split_host_port
from .base import Bool, Int, _check, _Model, bind_host, bind_port

POLICIES = ("round_robin", "weighted", "all_healthy", "first_healthy", "p2c")
STATIC_TYPES = ("A", "AAAA", "CNAME", "TXT", "NS", "MX")
_LABELS = r"^([A-Za-z0-9_*]([A-Za-z0-9_-]{0,62})?\.?)+$|^@$"  # host-name labels (and "@": the zone itself)
DnsName = Annotated[str, Field(min_length=1, max_length=253, pattern=_LABELS)]
Ttl = Annotated[Int, Field(ge=0, le=604800)]


class RecordConfig(_Model):
    name: DnsName
    """Relative to the zone (\"app\"), absolute (\"app.example.test.\") or \"@\" for the zone itself."""
    pool: Annotated[str, Field(min_length=1)] | None = None
    """Answer A/AAAA records from this pool's healthy servers."""
    policy: Literal["round_robin", "weighted", "all_healthy", "first_healthy", "p2c"] = "all_healthy"
    """Which healthy servers a pool record answers with."""
    max_answers: Annotated[Int, Field(ge=1, le=64)] | None = None
    """At most this many addresses per answer (default: all)."""
    type: Literal["A", "AAAA", "CNAME", "TXT", "NS", "MX"] | None = None
    """A static record's type."""
    values: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """A static record's values (with type)."""
    ttl: Ttl | None = None
    """TTL of this record's answers; default: the zone's ttl."""

    @model_validator(mode="after")
    def _one_kind(self) -> RecordConfig:
        if (self.pool is None) == (not self.values):
            raise ValueError("a record has either pool (answers from its healthy servers) or type and values")
        if self.values:
            if self.type is None:
                raise ValueError("a static record needs type (A, AAAA, CNAME, TXT, NS or MX)")
            for v in self.values:
                _check_value(self.type, v)
        return self


def _check_value(kind: str, value: str) -> None:
    if kind in ("A", "AAAA"):
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{kind} value {value!r} is not an IP address") from None
        if (addr.version == 4) != (kind == "A"):
            raise ValueError(f"{value!r} is not an IPv{4 if kind == 'A' else 6} address ({kind})")
    elif kind == "MX" and not (len(value.split()) == 2 and value.split()[0].isdigit()):
        raise ValueError(f'MX value {value!r} must be "PREFERENCE NAME", e.g. "10 mail.example.test."')


class DnsConfig(_Model):
    name: Annotated[str, Field(min_length=1)] = "dns"
    """The zone's name (logs, metrics)."""
    bind: Annotated[str, _check(lambda t: split_host_port(t, allow_port_zero=True))] = "127.0.0.1:5353"
    """The address the zone is served on (UDP, and TCP unless tcp = false)."""
    zone: DnsName
    """The zone's origin, e.g. \"example.test.\"."""
    ttl: Ttl = 30
    """Default TTL of answers, in seconds."""
    ns: tuple[DnsName, ...] = ()
    """The zone's name servers (NS); default: ns1.<zone>."""
    hostmaster: DnsName | None = None
    """SOA RNAME; default: hostmaster.<zone>."""
    serial: Annotated[Int, Field(ge=0, le=4294967295)] = 1
    """SOA serial number."""
    negative_ttl: Ttl = 5
    """SOA minimum: how long resolvers keep NXDOMAIN / NODATA."""
    fallback: Literal["all", "servfail"] = "all"
    """A pool record whose pool has no healthy server: answer all its servers, or SERVFAIL."""
    tcp: Bool = True
    """Also answer over TCP (truncated UDP answers are retried there)."""
    records: tuple[RecordConfig, ...] = Field(default=(), alias="record")
    """The zone's records."""

    @model_validator(mode="after")
    def _in_zone(self) -> DnsConfig:
        zone = self.origin
        for i, r in enumerate(self.records, 1):
            full = absolute(r.name, zone)
            if full != zone and not full.endswith("." + zone):
                raise ValueError(f"record #{i} {r.name!r} is outside the zone {zone}")
        return self

    host, port = bind_host, bind_port

    @property
    def origin(self) -> str:
        z = self.zone.lower()
        return z if z.endswith(".") else z + "."
