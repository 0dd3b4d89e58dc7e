"""Redis connection and the key layout the cluster shares.

Key layout (``P`` = ``[cluster] prefix``):
- ``P:pool:POOL`` hash: ``algorithm`` -> name; ``s:NAME`` -> JSON server entry (address, weight,
  backup, state, origin); ``r:NAME`` -> "1" for a configured server removed at runtime.
- ``P:version``: incremented by every shared change (with its publish, in one transaction).
- ``P:events``: pub/sub channel of JSON notices ``{"origin", "kind", ...}``; a notice only says
  *what* changed, the stored state is the truth (a node that missed one converges on its next sync).
- ``P:node:NODE``: a node's heartbeat document, with a TTL of ``expire``; ``P:nodes``: a sorted set
  of node names by last heartbeat (wall clock), pruned of long-gone nodes.
- ``P:load:NODE``: JSON ``{pool: {server: [active, ewma]}}`` with a short TTL.
- ``P:stick:POOL:CLIENT``: a source-address stick entry (server name) with the table's expiry.
- ``P:reg:POOL:NAME``: a self-registered server (JSON address, weight) kept alive with a TTL.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from .sentinel import parse_sentinel

TIMEOUT = 1.0  # socket and connect timeout: a dead Redis must not hold the control plane long


def connect(url: str) -> Any:
    """A redis.asyncio client for ``redis://``, ``rediss://`` or ``redis+sentinel://`` (the master)."""
    if url.startswith("redis+sentinel://"):
        from redis.asyncio.sentinel import Sentinel

        target = parse_sentinel(url)
        sentinel = Sentinel(list(target.sentinels), socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        return sentinel.master_for(
            target.master, db=target.db, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
        )
    return aioredis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True)


class Keys:
    def __init__(self, prefix: str) -> None:
        self.p = prefix
        self.version = f"{prefix}:version"
        self.events = f"{prefix}:events"
        self.nodes = f"{prefix}:nodes"

    def pool(self, pool: str) -> str:
        return f"{self.p}:pool:{pool}"

    def node(self, node: str) -> str:
        return f"{self.p}:node:{node}"

    def load(self, node: str) -> str:
        return f"{self.p}:load:{node}"

    def stick(self, pool: str, client: str) -> str:
        return f"{self.p}:stick:{pool}:{client}"

    def reg(self, pool: str, name: str) -> str:
        return f"{self.p}:reg:{pool}:{name}"


def record_of(fields: dict[str, str]) -> dict[str, Any]:
    """A pool's hash -> ``{"algorithm", "removed", "servers"}`` (the state file's pool record)."""
    import json

    servers = {k[2:]: json.loads(v) for k, v in fields.items() if k.startswith("s:")}
    removed = sorted(k[2:] for k in fields if k.startswith("r:"))
    return {"algorithm": fields.get("algorithm"), "removed": removed, "servers": servers}
