"""``[cluster]``: several balancers as one, sharing runtime state through Redis. Without the
table a balancer runs alone with in-memory state, exactly as before.

    [cluster]
    redis = "redis://127.0.0.1:6379/0"   # or rediss://..., or redis+sentinel://H1:26379,H2:26379/MASTER/DB
    node = "lb1"                          # unique per balancer
    heartbeat = "1s"                      # membership heartbeat; a node is gone after ``expire``
    expire = "5s"
    sync = "2s"                           # full re-read of the shared state (pub/sub is the fast path)
    load_interval = "200ms"               # per-server active counts published for cluster-wide least_conn/time
    prefix = "steelyard"                  # Redis key prefix (several clusters on one Redis)

Invariants:
- ``expire`` is more than twice ``heartbeat`` (one lost heartbeat never drops a node).
- ``redis`` is one of the three URL forms above; a Sentinel URL names at least one sentinel and
  the master's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from .config_base import NAME_PATTERN, Duration, _Model
from .units import split_host_port

SCHEMES = ("redis", "rediss", "redis+sentinel")


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int


def parse_sentinel(url: str) -> SentinelTarget:
    """``redis+sentinel://H1:P1,H2:P2/MASTER[/DB]`` -> the sentinels, the master's name, the db."""
    rest = url.split("://", 1)[1]
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts:
        raise ValueError("a Sentinel URL is redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]")
    sentinels = tuple(split_host_port(h) for h in hosts.split(","))
    db = int(parts[1]) if len(parts) > 1 else 0
    return SentinelTarget(sentinels, parts[0], db)


def _redis_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(f"redis must start with {', '.join(s + '://' for s in SCHEMES)}; got {url!r}")
    if scheme == "redis+sentinel":
        parse_sentinel(url)
    elif not urlsplit(url).hostname and "unix" not in url:
        raise ValueError(f"redis URL {url!r} names no host")
    return url


class ClusterConfig(_Model):
    redis: Annotated[str, AfterValidator(_redis_url)]
    """Redis URL: redis://HOST:PORT/DB, rediss://... or redis+sentinel://H1:P1,H2:P2/MASTER[/DB]."""
    node: Annotated[str, Field(pattern=NAME_PATTERN)]
    """This balancer's name in the cluster; unique per node."""
    heartbeat: Duration = 1.0
    """How often this node says it is alive."""
    expire: Duration = 5.0
    """A node not heard of for this long is gone; more than twice heartbeat."""
    sync: Duration = 2.0
    """Full re-read of the shared state (pub/sub is the fast path)."""
    load_interval: Duration = 0.2
    """How often per-server in-flight counts are published for cluster-wide least_conn and least_time."""
    prefix: Annotated[str, Field(pattern=NAME_PATTERN)] = "steelyard"
    """Redis key prefix (several clusters on one Redis)."""

    @model_validator(mode="after")
    def _timing(self) -> ClusterConfig:
        if not self.heartbeat > 0 or not self.sync > 0 or not self.load_interval > 0:
            raise ValueError("heartbeat, sync and load_interval must be more than 0")
        if self.expire <= 2 * self.heartbeat:
            raise ValueError(f"expire ({self.expire}s) must be more than twice heartbeat ({self.heartbeat}s)")
        return self
