"""One balancer's membership in the cluster: the loops that talk to Redis.

Tasks (all in the balancer's event loop, none on the request path):
- ``_writer``: local changes (admin API, learned stick entries), in order, each stored and
  published in one transaction; a write that fails is retried (with backoff) until Redis is back,
  so a change made while Redis is down is shared once it returns.
- ``_ticker``: every ``load_interval`` publishes this node's per-server load and reads the others'
  (cluster-wide least_conn / least_time); every ``heartbeat`` refreshes the node's TTL'd document;
  every ``sync`` (and at once after a notice or a reconnect) re-reads the stored pool state and
  reconciles; registrations are scanned every ``REG_SCAN`` seconds.
- ``_subscriber``: pub/sub notices from other nodes (ours are ignored: they carry our node name).
Failure rule: any Redis error marks the node degraded (status, metric, one WARNING), the loops back
off (``BACKOFF_MIN`` doubling to ``BACKOFF_MAX``) and keep the last known state; on the first success
the node is healthy again and resynchronises in full (pending writes first, then a re-read).
A resync never runs while local writes are pending: they would be undone before they are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..core.balancing.cluster_load import CLUSTER_VARIANTS
from ..core.model import Server
from .registry import Registry
from .shared import reconcile
from .stick import SharedStickTable
from .store import Keys, connect, record_of

log = logging.getLogger("steelyard.cluster")
BACKOFF_MIN, BACKOFF_MAX = 0.1, 2.0
REG_SCAN = 0.5
MAX_PENDING = 10_000
ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class ClusterNode:
    def __init__(self, runtime: Any, cfg: Any) -> None:
        self.runtime, self.cfg = runtime, cfg
        self.node = cfg.node
        self.keys = Keys(cfg.prefix)
        self.redis: Any = None
        self.started = time.time()
        self.degraded: str | None = None  # why, while Redis cannot be reached
        self.degraded_since = 0.0
        self.writes: asyncio.Queue = asyncio.Queue()
        self.pending = 0  # writes queued or in flight
        self.tasks: list[asyncio.Task] = []
        self.wake = asyncio.Event()  # a notice came: sync now
        self.resync = True  # a full resync is due (start, reconnect)
        self.synced_at = 0.0
        self.registry = Registry(self)
        self.tables: dict[str, SharedStickTable] = {}

    # -- start / stop ---------------------------------------------------------------

    async def start(self) -> None:
        """Connect, take the cluster's current state (when Redis answers; else keep the local state
        and catch up later), then run the loops."""
        self.redis = connect(self.cfg.redis)
        self.adopt_pools()
        try:
            await self.sync_all()
        except ERRORS as exc:
            self._failed(exc)
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._writer()),
            loop.create_task(self._ticker()),
            loop.create_task(self._subscriber()),
        ]

    def adopt_pools(self) -> None:
        """Make the runtime's (possibly rebuilt: a reload) pools clustered; a resync follows."""
        rt = self.runtime
        rt.changes.listener = self.local_change
        self.tables = {}
        self.resync = True
        self.wake.set()
        for name, pool in rt.pools.items():
            pool.variants = CLUSTER_VARIANTS
            rt.health[name].publish()
            sticky = pool.sticky
            if sticky is not None and sticky.table is not None:
                table = SharedStickTable.adopt(sticky.table, lambda k, s, p=name: self.stick_put(p, k, s))
                sticky.table = self.tables[name] = table

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, *ERRORS):
                await task
        if self.redis is not None and not self.degraded:
            with contextlib.suppress(*ERRORS):
                await asyncio.wait_for(self.redis.delete(self.keys.node(self.node), self.keys.load(self.node)), 1.0)
                await asyncio.wait_for(self.redis.zrem(self.keys.nodes, self.node), 1.0)
        if self.redis is not None:
            with contextlib.suppress(*ERRORS):
                await self.redis.aclose()

    # -- health of the link -----------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        if self.degraded is None:
            self.degraded_since = time.time()
            log.warning("cluster: Redis unreachable (%s): degraded, balancing on the last known state", exc)
            print(f"steelyard: cluster degraded: {exc}", flush=True)
        self.degraded = str(exc) or type(exc).__name__
        self.resync = True

    def _ok(self) -> None:
        if self.degraded is not None:
            log.warning(
                "cluster: Redis reachable again after %.1fs: resynchronising", time.time() - self.degraded_since
            )
            print("steelyard: cluster reconnected", flush=True)
            self.degraded = None

    # -- local changes -> Redis ---------------------------------------------------------

    def local_change(self, kind: str, pool: str, name: str, data: Any) -> None:
        """``RuntimeChanges`` listener: share a change made on this node's API."""
        if kind == "server" and data.get("origin") == "registered":
            return  # (registrations are their own truth)
        self._queue(("pool", kind, pool, name, data))

    def stick_put(self, pool: str, client: str, server: str) -> None:
        self._queue(("stick", pool, client, server))

    def _queue(self, item: tuple) -> None:
        if self.pending >= MAX_PENDING:
            log.error("cluster: %d writes waiting for Redis; dropping %s", self.pending, item[:2])
            return
        self.pending += 1
        self.writes.put_nowait(item)

    async def _writer(self) -> None:
        while True:
            item = await self.writes.get()
            backoff = BACKOFF_MIN
            while True:
                try:
                    await self._write(item)
                    self._ok()
                    break
                except ERRORS as exc:
                    self._failed(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
            self.pending -= 1

    async def _write(self, item: tuple) -> None:
        k = self.keys
        tx = self.redis.pipeline(transaction=True)
        if item[0] == "stick":
            _, pool, client, server = item
            table = self.tables[pool]
            tx.set(k.stick(pool, client), server, px=max(1, int(table.expire * 1000)))
            notice = {"kind": "stick", "pool": pool, "client": client, "server": server}
        else:
            _, kind, pool, name, data = item
            key = k.pool(pool)
            if kind == "server":
                tx.hset(key, f"s:{name}", json.dumps(data, sort_keys=True))
                tx.hdel(key, f"r:{name}")
            elif kind == "remove":
                tx.hdel(key, f"s:{name}")
                if data == "config":
                    tx.hset(key, f"r:{name}", "1")
            else:
                tx.hset(key, "algorithm", name)
            tx.incr(k.version)
            notice = {"kind": "pool", "pool": pool}
        tx.publish(k.events, json.dumps({**notice, "origin": self.node}))
        await tx.execute()

    # -- Redis -> this node -------------------------------------------------------------

    async def sync_all(self) -> None:
        """Re-read every pool's stored state and reconcile (skipped while local writes wait)."""
        if self.pending:
            return
        rt = self.runtime
        names = list(rt.health)
        if await self.redis.set(self.keys.version, 0, nx=True):
            await self._seed()  # a Redis without our data (new, or restarted empty): it gets our state
        tx = self.redis.pipeline(transaction=False)
        for name in names:
            tx.hgetall(self.keys.pool(name))
        results = await tx.execute()
        if self.pending:  # (a local change arrived while reading: the next sync takes it)
            return
        for name, fields in zip(names, results):
            if name in rt.health:
                reconcile(rt.changes, name, record_of(fields))
        if self.resync:
            for name, table in self.tables.items():
                await self._load_stick(name, table)
            self.resync = False
        self.synced_at = time.monotonic()
        self._ok()

    async def _seed(self) -> None:
        """Store this node's last known state (its runtime record) in a Redis that has none: the
        first node to find Redis empty (it won ``SET version NX``) seeds it, the others adopt it."""
        tx = self.redis.pipeline(transaction=True)
        for pool, rec in self.runtime.changes.record["pools"].items():
            key = self.keys.pool(pool)
            if rec.get("algorithm"):
                tx.hset(key, "algorithm", rec["algorithm"])
            for name, srv in rec.get("servers", {}).items():
                if srv.get("origin") != "registered":
                    tx.hset(key, f"s:{name}", json.dumps(srv, sort_keys=True))
            for name in rec.get("removed", []):
                tx.hset(key, f"r:{name}", "1")
        tx.incr(self.keys.version)
        tx.publish(self.keys.events, json.dumps({"kind": "pool", "pool": "*", "origin": self.node}))
        await tx.execute()
        log.warning("cluster: Redis held no shared state: seeded it with this node's")

    async def _load_stick(self, pool: str, table: SharedStickTable) -> None:
        """Bring in the stick entries other nodes stored (bounded by the table's size)."""
        prefix = self.keys.stick(pool, "")
        found = 0
        async for key in self.redis.scan_iter(match=prefix + "*", count=500):
            server = await self.redis.get(key)
            if server is not None:
                table.learn(key[len(prefix) :], server)
            found += 1
            if found >= table.size:
                break

    async def _subscriber(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.events)
                backoff = BACKOFF_MIN
                self.wake.set()  # (notices may have been missed while unsubscribed)
                for _ in range(10**12):  # (ends with an error or cancellation)
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        self._notice(msg.get("data"))
            except ERRORS as exc:
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                with contextlib.suppress(*ERRORS, RuntimeError):
                    await pubsub.aclose()

    def _notice(self, raw: Any) -> None:
        try:
            notice = json.loads(raw)
        except (TypeError, ValueError):
            return
        if notice.get("origin") == self.node:
            return
        kind = notice.get("kind")
        if kind == "stick":
            table = self.tables.get(notice.get("pool"))
            if table is not None:
                table.learn(str(notice["client"]), str(notice["server"]))
        elif kind == "reg":
            self.registry.due = 0.0
            self.wake.set()
        else:
            self.wake.set()

    async def _ticker(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        beat_due = sync_due = 0.0
        backoff = BACKOFF_MIN
        while True:
            now = loop.time()
            try:
                await self.exchange_load()
                if now >= beat_due:
                    await self.heartbeat()
                    beat_due = now + cfg.heartbeat
                if self.wake.is_set() or self.resync or now >= sync_due:
                    self.wake.clear()
                    await self.sync_all()
                    sync_due = now + cfg.sync
                if now >= self.registry.due:
                    await self.registry.scan()
                    self.registry.due = now + REG_SCAN
                self._ok()
                backoff = BACKOFF_MIN
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), cfg.load_interval)
            except ERRORS as exc:
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    # -- membership and load -------------------------------------------------------------

    def view(self) -> dict[str, dict[str, str]]:
        health = self.runtime.health
        return {name: {r["server"]: r["status"] for r in keeper.status()} for name, keeper in health.items()}

    async def heartbeat(self) -> None:
        k, now = self.keys, time.time()
        doc = {"node": self.node, "beat": now, "started": self.started, "servers": self.view()}
        tx = self.redis.pipeline(transaction=False)
        tx.set(k.node(self.node), json.dumps(doc), px=int(self.cfg.expire * 1000))
        tx.zadd(k.nodes, {self.node: now})
        tx.zremrangebyscore(k.nodes, "-inf", now - 60 * self.cfg.expire)
        await tx.execute()

    async def exchange_load(self) -> None:
        k = self.keys
        mine = {
            name: {
                st.server.name: [st.server.load.active, round(st.server.load.ewma, 6)] for st in keeper.health.states
            }
            for name, keeper in self.runtime.health.items()
        }
        ttl = int(max(2.0, 10 * self.cfg.load_interval) * 1000)
        await self.redis.set(k.load(self.node), json.dumps(mine), px=ttl)
        others = [n for n in await self.redis.zrange(k.nodes, 0, -1) if n != self.node]
        docs = await self.redis.mget([k.load(n) for n in others]) if others else []
        self.apply_load([json.loads(d) for d in docs if d])

    def apply_load(self, docs: list[dict]) -> None:
        """Set each local server's ``remote`` (others' in-flight sum) and ``remote_ewma`` (their mean)."""
        for name, keeper in self.runtime.health.items():
            for st in keeper.health.states:
                load: Any = st.server.load
                active, ewmas = 0, []
                for doc in docs:
                    entry = doc.get(name, {}).get(st.server.name)
                    if entry:
                        active += int(entry[0])
                        if entry[1] > 0:
                            ewmas.append(float(entry[1]))
                load.remote = active
                load.remote_ewma = sum(ewmas) / len(ewmas) if ewmas else 0.0
        if getattr(self.runtime, "hub", None) is not None:  # (workers = N: they pick, so they need it)
            self.runtime.hub.push_remote()

    async def members(self) -> list[dict[str, Any]]:
        """Every live node (ours included) with its age and its view of each server."""
        k = self.keys
        names = await self.redis.zrange(k.nodes, 0, -1)
        docs = await self.redis.mget([k.node(n) for n in names]) if names else []
        now, out = time.time(), []
        for raw in docs:
            if raw:
                doc = json.loads(raw)
                out.append(
                    {
                        "node": doc["node"],
                        "age_s": round(max(0.0, now - doc["beat"]), 3),
                        "up_s": round(now - doc["started"], 1),
                        "servers": doc["servers"],
                    }
                )
        return out

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "redis": _safe_url(self.cfg.redis),
            "degraded": self.degraded is not None,
            "reason": self.degraded,
            "pending_writes": self.pending,
        }


def _safe_url(url: str) -> str:
    """The Redis URL without a password."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


__all__ = ["ClusterNode", "Server"]
