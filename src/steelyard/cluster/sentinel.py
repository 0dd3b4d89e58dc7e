"""Redis Sentinel URLs: ``redis+sentinel://H1:P1,H2:P2/MASTER[/DB]``, parsed for the cluster's
Redis connection (store.py) and checked when the configuration is read (config/cluster.py).
No Redis client is imported here."""

from __future__ import annotations

from dataclasses import dataclass

from ..units import split_host_port


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
