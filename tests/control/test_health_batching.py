"""PoolHealthKeeper.publish_soon: small pools publish each check result's change at once, large
pools publish a burst of changes once."""

import asyncio
import random

from steelyard.config import parse_config
from steelyard.control.health import BATCH_FROM, PoolHealthKeeper
from steelyard.control.runtime import Runtime
from steelyard.core.health import Hysteresis, ServerState
from steelyard.core.model import Server


def keeper_of(n, loop):
    config = parse_config(
        {
            "listener": [{"name": "web", "bind": "127.0.0.1:0", "pool": "p"}],
            "pool": [{"name": "p", "servers": [{"address": "127.0.0.1:9"}]}],
        }
    )
    pool = Runtime(config).make_pool(config.pools[0], loop)
    states = [ServerState(Server(f"s{i}", "127.0.0.1", 20000 + i), check=Hysteresis(1, 1)) for i in range(n)]
    keeper = PoolHealthKeeper(pool, config.pools[0], states, loop=loop, rng=random.Random(1))
    keeper.publish()
    return keeper, states


async def test_a_small_pool_publishes_each_change_at_once():
    keeper, states = keeper_of(BATCH_FROM, asyncio.get_running_loop())
    keeper._checked(states[0], True, "ok")  # (the first result decides)
    keeper._checked(states[3], False, "refused")
    assert states[3].server not in keeper.pool.snapshot.servers and keeper.pending is None


async def test_a_large_pool_publishes_a_burst_of_changes_once():
    loop = asyncio.get_running_loop()
    keeper, states = keeper_of(BATCH_FROM + 50, loop)
    published = asyncio.Event()
    calls = []
    publish = keeper.publish

    def counted():
        calls.append(len(keeper.health.usable()))
        publish()
        published.set()

    keeper.publish = counted
    for st in states[:40]:
        keeper._checked(st, False, "refused")
    assert calls == [] and len(keeper.pool.snapshot.servers) == len(states)  # not yet
    await asyncio.wait_for(published.wait(), 5)
    assert calls == [len(states) - 40]
    assert not set(st.server for st in states[:40]) & set(keeper.pool.snapshot.servers)
    keeper.stop()
