"""The session store interface and the node-local ``MemoryStore``.

A store maps a session id (an unguessable random token) to a JSON-able dict with a time to
live. Every store is async and has the same four operations; invariants for all of them:

- ``get`` of a missing, deleted or expired session is None (never an error).
- ``update(sid, fn)`` applies ``fn`` to the current data atomically with respect to other
  updates of the same session through the same store (and, for Redis, through any client):
  no increment is lost between two concurrent callers. It returns the new data, or None
  when the session does not exist (``fn`` is not called then).
- Every write (``create``, ``update``) restarts the session's TTL.
- A store that cannot reach its backend raises ``StoreUnavailable`` within a bounded time
  (the middleware answers 503), and works again once the backend is back.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Update = Callable[[Data], Data]
DEFAULT_TTL = 1800.0


class StoreUnavailable(Exception):
    """The store's backend cannot be reached; the message says which and why."""


def new_id() -> str:
    return secrets.token_urlsafe(24)


class Store:
    """What the middleware needs; see the module docstring for the rules."""

    ttl: float = DEFAULT_TTL

    async def start(self) -> None:  # connect, catch up: whatever the store needs before use
        pass

    async def stop(self) -> None:
        pass

    async def get(self, sid: str) -> Data | None:
        raise NotImplementedError

    async def create(self, data: Data) -> str:
        raise NotImplementedError

    async def update(self, sid: str, fn: Update) -> Data | None:
        raise NotImplementedError

    async def delete(self, sid: str) -> None:
        raise NotImplementedError


class MemoryStore(Store):
    """Sessions in this process only: lost when it stops, invisible to other servers.
    At most ``max_sessions`` (least recently used ones go first); one event loop owns it,
    so an update (no await inside) is atomic."""

    def __init__(
        self, ttl: float = DEFAULT_TTL, *, max_sessions: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.max_sessions, self.clock = ttl, max_sessions, clock
        self.items: OrderedDict[str, tuple[float, Data]] = OrderedDict()  # sid -> (expires, data)

    async def get(self, sid: str) -> Data | None:
        item = self.items.get(sid)
        if item is None:
            return None
        if self.clock() >= item[0]:
            del self.items[sid]
            return None
        return dict(item[1])

    async def create(self, data: Data) -> str:
        sid = new_id()
        self._put(sid, dict(data))
        return sid

    async def update(self, sid: str, fn: Update) -> Data | None:
        current = await self.get(sid)
        if current is None:
            return None
        data = fn(current)
        self._put(sid, data)
        return dict(data)

    async def delete(self, sid: str) -> None:
        self.items.pop(sid, None)

    def _put(self, sid: str, data: Data) -> None:
        self.items[sid] = (self.clock() + self.ttl, data)
        self.items.move_to_end(sid)
        while len(self.items) > self.max_sessions:
            self.items.popitem(last=False)


def open_store(
    spec: str,
    *,
    ttl: float = DEFAULT_TTL,
    node: str = "",
    listen: tuple[str, int] | None = None,
    peers: tuple[tuple[str, int], ...] = (),
) -> Store:
    """``memory``, ``redis://HOST:PORT/DB`` or ``replicated`` (with ``node``, ``listen`` and ``peers``)."""
    if spec == "memory":
        return MemoryStore(ttl)
    if spec.startswith("redis://"):
        from ..extras import require

        require("redis", "the Redis session store")
        from .redis_store import RedisStore

        return RedisStore(spec, ttl=ttl)
    if spec == "replicated":
        from .replicated import ReplicatedStore

        if listen is None:
            raise ValueError("a replicated store needs an address to listen on for its peers")
        return ReplicatedStore(node or f"{listen[0]}:{listen[1]}", listen, peers, ttl=ttl)
    raise ValueError(f"unknown session store {spec!r}: memory, redis://HOST:PORT/DB or replicated")
