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

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from ..cluster.sentinel import parse_sentinel
from .base import NAME_PATTERN, Duration, _Model

SCHEMES = ("redis", "rediss", "redis+sentinel")


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
