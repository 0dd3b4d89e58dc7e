"""steelyard.proxy.tables: hashing pools reuse their table when servers go and come back,
and build a large new one off the event loop while the previous one serves."""

import asyncio
import random

from steelyard.core.balancing import BalancerOptions, PickContext
from steelyard.core.model import Server
from steelyard.proxy.pool import PoolRuntime
from steelyard.proxy.tables import INLINE_SLOTS

KEYS = [f"10.0.{i // 256}.{i % 256}" for i in range(400)]


class Upstream:
    def close(self):
        pass


def servers(n, start=0):
    return [Server(f"s{i}", "127.0.0.1", 9000 + i) for i in range(start, start + n)]


def runtime(srv):
    return PoolRuntime(
        "app", "ip_hash", BalancerOptions(), srv,
        make_upstream=lambda s: Upstream(), rng=random.Random(1), clock=lambda: 1.0, timeout=30.0,
    )  # fmt: skip


def homes(pool):
    return {k: pool.snapshot.balancer.pick(PickContext(k)) for k in KEYS}


def test_servers_going_down_and_back_reuse_the_table():
    srv = servers(8)
    pool = runtime(srv)
    slots = pool.inner._table.slots
    before = homes(pool)
    pool.publish(srv[:6])
    assert pool.inner._table.slots is slots
    assert all(before[k] is s for k, s in homes(pool).items() if before[k] in srv[:6])
    pool.publish(srv)
    assert pool.inner._table.slots is slots and homes(pool) == before


def test_without_a_loop_a_new_table_is_built_in_line():
    srv = servers(60)  # 65537 slots: more than INLINE_SLOTS
    pool = runtime(srv[:59])
    pool.publish(srv)
    assert srv[59] in pool.inner.servers and not pool.inner._table.dead
    assert srv[59] in set(homes(pool).values())


async def test_a_large_new_table_is_built_off_the_loop_while_the_old_one_serves():
    srv = servers(60)
    pool = runtime(srv[:59])
    assert pool.inner._table.size > INLINE_SLOTS
    old = homes(pool)
    ready = asyncio.Event()
    republish = pool.tables.republish

    def republished():
        republish()
        ready.set()

    pool.tables.republish = republished
    pool.publish(srv)
    assert not ready.is_set()
    assert homes(pool) == old  # the previous table serves; the new server waits for its own
    assert srv[59] in pool.snapshot.servers and srv[59] not in pool.inner.servers
    await asyncio.wait_for(ready.wait(), 30)
    assert srv[59] in pool.inner.servers and not pool.inner._table.dead
    assert srv[59] in set(pool.inner._table.slots)
    moved = sum(old[k] is not s for k, s in homes(pool).items())
    assert moved < len(KEYS) * 0.05  # about 1/60 of the keys move to the new server


def test_a_reloads_new_pool_starts_from_the_old_pools_table():
    srv = servers(60)
    old = runtime(srv)
    new = PoolRuntime(
        "app", "ip_hash", BalancerOptions(), (),
        make_upstream=lambda s: Upstream(), rng=old.rng, clock=old.clock, timeout=30.0,
    )  # fmt: skip
    new.tables.adopt(old.tables)
    new.publish(srv[:58])  # the same servers but two: narrowed, not built
    assert new.inner._table.slots is old.inner._table.slots
    before, after = homes(old), homes(new)
    assert all(after[k] is s for k, s in before.items() if s in srv[:58])
    assert set(after.values()) <= set(srv[:58])
    other = PoolRuntime(
        "app", "ip_hash", BalancerOptions(hash_on="uri"), (),
        make_upstream=lambda s: Upstream(), rng=old.rng, clock=old.clock, timeout=30.0,
    )  # fmt: skip
    other.tables.adopt(old.tables)  # other options: nothing to share
    other.publish(srv)
    assert other.inner._table.slots is not old.inner._table.slots
