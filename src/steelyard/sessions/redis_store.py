"""``RedisStore``: sessions in a real redis-server, shared by every application server.

Each session is one string key ``PREFIX + sid`` holding the JSON of its data, with the
store's TTL as the key's expiry (``SET ... EX``; every write restarts it).
``update`` is an optimistic transaction (WATCH / MULTI / EXEC), retried when another client
changed the key in between, at most ``MAX_RETRIES`` times: increments are never lost.
Every command has a connect and a socket timeout, so an unreachable Redis becomes
``StoreUnavailable`` within about ``timeout`` seconds instead of a hang; the client
reconnects by itself on the next command once Redis is back.
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from .store import DEFAULT_TTL, Data, Store, StoreUnavailable, Update, new_id

PREFIX = "steelyard:session:"
MAX_RETRIES = 20


class RedisStore(Store):
    def __init__(self, url: str, *, ttl: float = DEFAULT_TTL, timeout: float = 1.0) -> None:
        self.url, self.ttl, self.timeout = url, ttl, timeout
        self.client = aioredis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )

    def _down(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"session store redis at {self.url} is unreachable: {exc}")

    async def stop(self) -> None:
        await self.client.aclose()

    async def get(self, sid: str) -> Data | None:
        try:
            raw = await self.client.get(PREFIX + sid)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._down(exc) from None
        return None if raw is None else json.loads(raw)

    async def create(self, data: Data) -> str:
        sid = new_id()
        try:
            await self.client.set(PREFIX + sid, json.dumps(data), ex=max(1, int(self.ttl)))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._down(exc) from None
        return sid

    async def update(self, sid: str, fn: Update) -> Data | None:
        key = PREFIX + sid
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for _ in range(MAX_RETRIES):
                    try:
                        await pipe.watch(key)
                        raw = await pipe.get(key)
                        if raw is None:
                            await pipe.unwatch()
                            return None
                        data = fn(json.loads(raw))
                        pipe.multi()
                        pipe.set(key, json.dumps(data), ex=max(1, int(self.ttl)))
                        await pipe.execute()
                        return data
                    except WatchError:
                        continue  # another client wrote it meanwhile: read again
                raise StoreUnavailable(f"session {sid[:6]}…: too much contention ({MAX_RETRIES} retries)")
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._down(exc) from None

    async def delete(self, sid: str) -> None:
        try:
            await self.client.delete(PREFIX + sid)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._down(exc) from None
