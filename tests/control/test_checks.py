"""steelyard.control.checks.CheckScheduler: one heap of due times per pool, checks as short tasks."""

import asyncio
import random
from types import SimpleNamespace

from steelyard.control import checks
from steelyard.control.checks import FIRST_ROUND_RATE, CheckScheduler
from steelyard.core.health import Hysteresis, ServerState
from steelyard.core.model import Server


def check(interval=0.01, jitter=0.1):
    return SimpleNamespace(interval=interval, failing_interval=interval / 2, jitter=jitter, timeout=1.0)


def states(n):
    return [ServerState(Server(f"s{i}", "127.0.0.1", 9000 + i), check=Hysteresis(1, 1)) for i in range(n)]


async def test_every_server_is_checked_again_and_again_one_check_at_a_time(monkeypatch):
    in_flight, seen, enough = set(), [], asyncio.Event()

    async def probe(server, cfg):
        assert server not in in_flight  # never two checks of one server at once
        in_flight.add(server)
        await asyncio.sleep(0.002)
        in_flight.discard(server)
        return server.name != "s2", "fake"

    monkeypatch.setattr(checks, "probe", probe)
    sts = states(5)

    def on_result(st, ok, why):
        seen.append((st.server.name, ok))
        if all(sum(1 for name, _ in seen if name == st.server.name) >= 3 for st in sts):
            enough.set()

    scheduler = CheckScheduler(check(), on_result, loop=asyncio.get_running_loop(), rng=random.Random(1))
    task = scheduler.start(sts)
    await asyncio.wait_for(enough.wait(), 10)
    scheduler.stop()
    await asyncio.sleep(0)
    assert task.cancelled() or task.done()
    assert ("s2", False) in seen and ("s1", True) in seen


async def test_a_forgotten_server_is_not_checked_again_and_its_result_is_dropped(monkeypatch):
    started, release = asyncio.Event(), asyncio.Event()
    calls = []

    async def probe(server, cfg):
        calls.append(server.name)
        if server.name == "s0":
            started.set()
            await release.wait()
        return True, "fake"

    monkeypatch.setattr(checks, "probe", probe)
    sts = states(2)
    results = []
    scheduler = CheckScheduler(
        check(),
        lambda st, ok, why: results.append(st.server.name),
        loop=asyncio.get_running_loop(),
        rng=random.Random(2),
    )
    scheduler.start(sts)
    await asyncio.wait_for(started.wait(), 10)
    scheduler.forget(sts[0])
    release.set()
    for _ in range(50):  # s1 keeps being checked meanwhile
        await asyncio.sleep(0.005)
    scheduler.stop()
    assert calls.count("s0") == 1 and "s0" not in results
    assert results.count("s1") >= 3


async def test_a_large_pools_first_round_is_spread_over_the_interval():
    loop = asyncio.get_running_loop()
    n = 4000
    scheduler = CheckScheduler(check(interval=2.0), lambda *a: None, loop=loop, rng=random.Random(3))
    sts = states(n)
    now = loop.time()
    scheduler.start(sts)
    scheduler.task.cancel()
    due = sorted(entry[0] - now for entry in scheduler.heap)
    assert len(due) == n and due[0] >= 0 and due[-1] <= 2.0 + 0.1
    assert due[-1] > 1.8  # spread over about the interval (n / FIRST_ROUND_RATE = 2 s), not the jitter
    assert max(b - a for a, b in zip(due, due[1:])) < 0.05
    small = CheckScheduler(check(interval=2.0), lambda *a: None, loop=loop, rng=random.Random(3))
    sts = states(10)
    now = loop.time()
    small.start(sts)
    small.task.cancel()
    assert max(entry[0] for entry in small.heap) - now <= 0.2 + 0.1  # small pools: the jitter (10%)
    assert n / FIRST_ROUND_RATE >= 2.0
