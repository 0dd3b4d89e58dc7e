"""steelyard.control.dashboard: the history ring (rates, errors, quantiles from histogram buckets),
server pages and the events list, on a runtime in-process with its counters set by hand."""

import asyncio
from collections import deque

import pytest

from steelyard.config import parse_config
from steelyard.control.dashboard import History, events, overview, quantile, server_page
from steelyard.control.runtime import Runtime
from steelyard.core.model import LATENCY_BOUNDS

BOUND = 10.0


def test_quantiles_interpolate_within_their_bucket_as_histogram_quantile_does():
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    assert quantile(0.5, counts) is None
    counts[0] = 100  # all under 5 ms
    assert quantile(0.5, counts) == pytest.approx(0.0025)
    counts[3] = 100  # and as many in (25 ms, 50 ms]
    assert quantile(0.99, counts) == pytest.approx(0.025 + 0.025 * 98 / 100)
    counts[-1] = 10_000  # beyond the last bound: its lower edge
    assert quantile(0.99, counts) == LATENCY_BOUNDS[-1]


@pytest.fixture
async def runtime():
    servers = ", ".join(f'{{ address = "127.0.0.1:{1000 + i}", name = "s{i}" }}' for i in range(120))
    rt = Runtime(
        parse_config(
            f'shutdown_grace = "1s"\n[[listener]]\nname = "web"\nbind = "127.0.0.1:0"\npool = "app"\n'
            f'[[pool]]\nname = "app"\nservers = [ {servers} ]\n'
        )
    )
    await rt.start()
    yield rt
    await asyncio.wait_for(rt.stop(grace=0), BOUND)


async def test_history_turns_counters_into_rates_per_pool_and_listener(runtime):
    history = History(runtime, interval=2.0, samples=3)
    history.sample(1000.0)
    assert history.view()["pools"] == history.view()["listeners"] == {}  # (rates need two readings)
    load = runtime.health["app"].health.states[0].server.load
    load.requests, load.by_class[5], load.failures, load.active = 40, 4, 2, 3
    load.latency[0] = 42  # every one under 5 ms
    runtime.health["app"].pool.answered[503] += 6
    web = runtime.listeners["web"]
    web.codes[2], web.codes[5] = 36, 10
    history.sample(1002.0)
    ((t, rps, eps, fps, p50, p99, active),) = history.view()["pools"]["app"]
    assert (t, rps, eps, fps, active) == (1002.0, (40 + 6) / 2, (4 + 6) / 2, 2 / 2, 3)
    assert p50 == pytest.approx(2.5) and p99 == pytest.approx(5 * 0.99)
    ((t, rps, eps, fps, p50, p99, active),) = history.view()["listeners"]["web"]
    assert (rps, eps, fps, active) == (23.0, 5.0, 1.0, 0) and p50 == pytest.approx(2.5)  # (its pool's)
    for now in (1004.0, 1006.0, 1008.0):
        history.sample(now)
    assert [s[0] for s in history.view()["pools"]["app"]] == [1004.0, 1006.0, 1008.0]  # the ring keeps 3
    assert [s[0] for s in history.view(since=1006.0)["pools"]["app"]] == [1008.0]
    assert history.view()["pools"]["app"][-1][1] == 0  # nothing more happened


async def test_servers_come_a_page_at_a_time_filtered(runtime):
    keeper = runtime.health["app"]
    page = server_page(keeper, 100, 50)
    assert page["total"] == 120 and [s["server"] for s in page["servers"]] == [f"s{i}" for i in range(100, 120)]
    assert [s["server"] for s in server_page(keeper, 0, 50, q="s11")["servers"]] == ["s11"] + [
        f"s{i}" for i in range(110, 120)
    ]
    keeper.set_state("s7", "maint")
    assert [s["server"] for s in server_page(keeper, 0, 50, status="maint")["servers"]] == ["s7"]
    assert overview(runtime, 0.0)["pools"][0]["by_status"] == {"up": 119, "maint": 1}


async def test_events_list_state_changes_newest_first(runtime):
    runtime.health["app"].set_state("s3", "drain")
    listed = events(runtime.journal, 10)
    assert [(e["pool"], e["text"]) for e in listed[:2]] == [
        ("app", "server s3: drained (no request in flight)"),
        ("app", "server s3: set to drain"),
    ]
    assert listed[-1]["pool"] is None and listed[-1]["text"].startswith("started with")
    assert len(events(deque([(1.0, None, "x")] * 50), 10)) == 10
