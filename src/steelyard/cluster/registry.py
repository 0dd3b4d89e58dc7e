"""Self-registered servers: ``steelyard register`` (or ``steelyard backend --register``) keeps a
TTL'd key ``P:reg:POOL:NAME`` alive; every node adds the server while the key lives and drains
it out once the key has expired.

Invariants:
- Registered servers have origin ``registered``; they are never written to the shared pool record
  or reconciled by it (the key is their only truth), and only they are removed by a scan.
- A newly added registered server starts in slow start (when the pool has ``slow_start``).
- A scan reads at most ``MAX_KEYS`` registrations (bounded work per scan).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..core.model import Server
from ..units import split_host_port
from .store import Keys, connect

log = logging.getLogger("steelyard.cluster")
MAX_KEYS = 10_000


class Registry:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.due = 0.0

    async def scan(self) -> None:
        redis, keys = self.node.redis, self.node.keys
        prefix = f"{keys.p}:reg:"
        found: dict[str, dict[str, dict]] = {}
        names = []
        async for key in redis.scan_iter(match=prefix + "*", count=500):
            names.append(key)
            if len(names) >= MAX_KEYS:
                break
        values = await redis.mget(names) if names else []
        for key, raw in zip(names, values):
            pool, _, name = key[len(prefix) :].partition(":")
            if raw:
                with contextlib.suppress(ValueError, TypeError):
                    found.setdefault(pool, {})[name] = json.loads(raw)
        self.apply(found)

    def apply(self, found: dict[str, dict[str, dict]]) -> None:
        rt = self.node.runtime
        for pool, keeper in rt.health.items():
            wanted = found.get(pool, {})
            for name, reg in wanted.items():
                st = next((s for s in keeper.health.states if s.server.name == name), None)
                if st is None:
                    self._add(keeper, name, reg)
                elif st.removing and st.origin == "registered":
                    keeper.set_state(name, "ready")
            for st in list(keeper.health.states):
                if st.origin == "registered" and not st.removing and st.server.name not in wanted:
                    log.warning("cluster: pool %s: registration of %s expired: draining it", pool, st.server.name)
                    keeper.remove_server(st.server.name)

    def _add(self, keeper: Any, name: str, reg: dict) -> None:
        try:
            host, port = split_host_port(str(reg["address"]))
            weight = int(reg.get("weight", 1))
        except (KeyError, ValueError, TypeError) as exc:
            log.error("cluster: pool %s: bad registration %s: %s", keeper.pool.name, name, exc)
            return
        if any(s.server.address == Server(name, host, port).address for s in keeper.health.states):
            log.error(
                "cluster: pool %s: registration %s: the address %s is in the pool already",
                keeper.pool.name,
                name,
                reg["address"],
            )
            return
        st = keeper.add_server(Server(name, host, port, weight, keeper.cfg.max_conns or 0), origin="registered")
        st.usable_since = keeper.loop.time()  # slow start, as for a server coming back
        keeper.publish()


async def keep_registered(
    url: str,
    pool: str,
    address: str,
    *,
    name: str | None = None,
    weight: int = 1,
    ttl: float = 3.0,
    prefix: str = "steelyard",
    stop: asyncio.Event | None = None,
    say: Any = print,
) -> None:
    """Hold the registration of ``address`` in ``pool`` until ``stop`` is set (or cancelled); refreshed
    every ``ttl / 3``; a Redis error is reported and retried at the next refresh. On a clean stop
    (SIGTERM, SIGINT) the key is deleted and the nodes told at once: they drain the server now,
    not when the TTL would have run out."""
    split_host_port(address)
    keys, name = Keys(prefix), name or address
    redis = connect(url)
    stop = stop or asyncio.Event()
    value = json.dumps({"address": address, "weight": weight, "since": time.time()})
    ok: bool | None = None
    try:
        while not stop.is_set():
            try:
                tx = redis.pipeline(transaction=True)
                tx.set(keys.reg(pool, name), value, px=int(ttl * 1000))
                tx.publish(keys.events, json.dumps({"kind": "reg", "pool": pool, "origin": f"register:{name}"}))
                await tx.execute()
                if ok is not True:
                    say(f"steelyard: registered {address} as {name} in pool {pool} (ttl {ttl:g}s)")
                ok = True
            except (RedisError, OSError) as exc:
                if ok is not False:
                    say(f"steelyard: registration of {name} failed ({exc}); retrying")
                ok = False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), ttl / 3)
        try:
            tx = redis.pipeline(transaction=True)
            tx.delete(keys.reg(pool, name))
            tx.publish(keys.events, json.dumps({"kind": "reg", "pool": pool, "origin": f"register:{name}"}))
            await tx.execute()
            say(f"steelyard: deregistered {name} from pool {pool}")
        except (RedisError, OSError) as exc:
            say(f"steelyard: could not deregister {name} ({exc}); its registration expires within {ttl:g}s")
    finally:
        with contextlib.suppress(RedisError, OSError):
            await redis.aclose()
