"""steelyard.control.health.PoolHealthKeeper driven through an in-process Runtime on 127.0.0.1 ephemeral
ports, in front of demo backends: draining, active checks, passive ejection and status output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from steelyard.config import parse_config
from steelyard.control.health import PoolHealthKeeper
from steelyard.control.runtime import Runtime
from steelyard.demo.backend import start_backend, stop_backend

BOUND = 10.0  # seconds: every wait in these tests is bounded by this
POLL = 0.05

T = TypeVar("T")


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, int]]:
    """Demo backends "a" and "b": name -> port."""
    servers = {name: await start_backend(name, "127.0.0.1", 0) for name in ("a", "b")}
    yield {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    for s in servers.values():
        await stop_backend(s)


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, never listened, closed): connects are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pool_config(servers: str, extra: str = "") -> Any:
    """One HTTP listener in front of pool "app" (round_robin) with ``servers`` (TOML array items)."""
    return parse_config(
        'shutdown_grace = "5s"\n'
        '[[listener]]\nname = "web"\nbind = "127.0.0.1:0"\npool = "app"\n\n'
        f'[[pool]]\nname = "app"\nalgorithm = "round_robin"\nconnect_timeout = "1s"\nservers = [{servers}]\n'
        f"{extra}\n"
    )


def server(name: str, port: int, more: str = "") -> str:
    return f'{{ name = "{name}", address = "127.0.0.1:{port}"{more} }}, '


@contextlib.asynccontextmanager
async def running(config: Any) -> AsyncIterator[Runtime]:
    rt = Runtime(config, rng=random.Random(7))
    await asyncio.wait_for(rt.start(), BOUND)
    try:
        yield rt
    finally:
        await asyncio.wait_for(rt.stop(grace=0), BOUND)


async def get(port: int, path: str = "/hello") -> tuple[int, str]:
    """One request on a fresh connection; returns (status, X-Served-By)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), BOUND)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        status, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = dict(line.lower().split(": ", 1) for line in lines)
        await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), BOUND)
        return int(status.split()[1]), headers.get("x-served-by", "")
    finally:
        writer.close()


async def until(condition: Callable[[], T], what: str) -> T:
    """Poll ``condition`` (bounded: BOUND seconds) until it returns something true; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    for _ in range(int(BOUND / POLL) + 1):
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            break
        await asyncio.sleep(POLL)
    raise AssertionError(f"not within {BOUND}s: {what}")


def row(keeper: PoolHealthKeeper, name: str) -> dict[str, Any]:
    (found,) = [r for r in keeper.status() if r["server"] == name]
    return found


def lb_port(rt: Runtime) -> int:
    return rt.listeners["web"].port


# --- (a) draining ------------------------------------------------------------------------


async def test_drain_finishes_in_flight_requests_and_sends_new_ones_elsewhere(
    backends: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="steelyard.health")
    config = pool_config(server("a", backends["a"]) + server("b", backends["b"]))
    async with running(config) as rt:
        keeper = rt.health["app"]
        port = lb_port(rt)
        slow = asyncio.create_task(get(port, "/sleep/300"))
        try:
            busy = await until(
                lambda: [st for st in keeper.health.states if st.server.load.active],
                "the slow request reaches a server",
            )
            (st,) = busy
            target = st.server.name
            other = ({"a", "b"} - {target}).pop()

            assert keeper.set_state(target, "drain") is st
            assert st.admin == "drain" and st.status == "drain"
            assert not st.drained  # its request is still in flight
            assert row(keeper, target)["status"] == "drain" and row(keeper, target)["active"] == 1
            assert [s.name for s in rt.pools["app"].snapshot.servers] == [other]

            served = [await get(port) for _ in range(6)]
            assert served == [(200, other)] * 6
            assert not slow.done()  # the new requests did not wait for the draining one
        finally:
            status, served_by = await asyncio.wait_for(slow, BOUND)
        assert (status, served_by) == (200, target)  # the in-flight request finished on the drained server

        await until(lambda: st.drained, "the keeper notices the drain is over")
        assert st.status == "drain"  # drained is not ready: still no new requests
        assert row(keeper, target)["active"] == 0
        assert [await get(port) for _ in range(2)] == [(200, other)] * 2
        assert f"pool app: server {target}: drained (no request in flight)" in caplog.messages
        assert f"pool app: server {target}: set to drain" in caplog.messages

        keeper.set_state(target, "ready")
        assert st.status == "up"
        assert {await get(port) for _ in range(4)} == {(200, "a"), (200, "b")}


async def test_set_state_refuses_unknown_servers_and_states(backends: dict[str, int]) -> None:
    config = pool_config(server("a", backends["a"]) + server("b", backends["b"]))
    async with running(config) as rt:
        keeper = rt.health["app"]
        with pytest.raises(KeyError, match="nope"):
            keeper.set_state("nope", "drain")
        with pytest.raises(ValueError, match="sleeping"):
            keeper.set_state("a", "sleeping")
        assert [r["status"] for r in keeper.status()] == ["up", "up"]
        assert {await get(lb_port(rt)) for _ in range(4)} == {(200, "a"), (200, "b")}


async def test_maint_takes_a_server_out_at_once(backends: dict[str, int]) -> None:
    config = pool_config(server("a", backends["a"]) + server("b", backends["b"]))
    async with running(config) as rt:
        keeper = rt.health["app"]
        st = keeper.set_state("b", "maint")
        assert st.status == "maint" and st.drained
        assert [await get(lb_port(rt)) for _ in range(4)] == [(200, "a")] * 4


# --- (b) active health checks --------------------------------------------------------------


async def test_failing_health_check_takes_a_server_out_and_brings_it_back(
    backends: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="steelyard.health")
    health = '[pool.health]\ninterval = "100ms"\ntimeout = "1s"\nrise = 2\nfall = 2\n'
    config = pool_config(server("a", backends["a"]) + server("b", backends["b"]), health)
    async with running(config) as rt:
        keeper = rt.health["app"]
        port = lb_port(rt)
        assert [r["status"] for r in keeper.status()] == ["up", "up"]
        assert await get(backends["b"], "/healthz/set/500") == (200, "b")  # directly on the backend

        down = await until(lambda: row(keeper, "b")["status"] == "down" and row(keeper, "b"), "b goes down")
        assert "HTTP 500" in down["reason"]
        assert down["reason"] == "down: HTTP 500 on /healthz (expected 200-399)"
        assert row(keeper, "a")["status"] == "up"
        assert [s.name for s in rt.pools["app"].snapshot.servers] == ["a"]
        assert [await get(port) for _ in range(6)] == [(200, "a")] * 6

        assert await get(backends["b"], "/healthz/set/200") == (200, "b")
        up = await until(lambda: row(keeper, "b")["status"] == "up" and row(keeper, "b"), "b comes back")
        assert up["reason"] == "up: HTTP 200 on /healthz"
        assert {await get(port) for _ in range(4)} == {(200, "a"), (200, "b")}
        assert "pool app: server b: down: HTTP 500 on /healthz (expected 200-399)" in caplog.messages
        assert "pool app: server b: up: HTTP 200 on /healthz" in caplog.messages


async def test_a_server_refusing_connections_is_marked_down_by_its_check(backends: dict[str, int]) -> None:
    health = '[pool.health]\ntype = "tcp"\ninterval = "100ms"\ntimeout = "1s"\nrise = 1\nfall = 1\n'
    config = pool_config(server("a", backends["a"]) + server("dead", closed_port()), health)
    async with running(config) as rt:
        keeper = rt.health["app"]
        down = await until(lambda: row(keeper, "dead")["status"] == "down" and row(keeper, "dead"), "dead goes down")
        assert down["reason"] == "down: connection refused"
        assert row(keeper, "a")["status"] == "up"
        assert [await get(lb_port(rt)) for _ in range(4)] == [(200, "a")] * 4
        assert rt.pools["app"].snapshot.servers[0].load.failures == 0  # no request was sent to "dead"


# --- (c) passive health: ejection on real traffic ---------------------------------------------------


async def test_consecutive_failures_eject_a_server_and_retries_hide_them(backends: dict[str, int]) -> None:
    config = pool_config(
        server("a", backends["a"]) + server("dead", closed_port()), "[pool.outlier]\nconsecutive_failures = 2\n"
    )
    async with running(config) as rt:
        keeper = rt.health["app"]
        port = lb_port(rt)
        (dead,) = [st for st in keeper.health.states if st.server.name == "dead"]
        sent = 0
        while dead.status != "ejected":
            assert sent < 20, "dead was not ejected after 20 requests"
            assert await get(port) == (200, "a")  # the failed try was retried on "a"
            sent += 1
        assert dead.server.load.failures == 2
        assert sent <= 4  # round robin: every other request tried "dead" first
        ejected = row(keeper, "dead")
        assert ejected["status"] == "ejected" and ejected["failures"] == 2
        assert ejected["reason"] == "ejected for 30s: 2 failed requests in a row (connect, reset or timeout)"
        assert [s.name for s in rt.pools["app"].snapshot.servers] == ["a"]

        assert [await get(port) for _ in range(4)] == [(200, "a")] * 4
        assert dead.server.load.failures == 2  # not tried any more
        assert re.search(r"^  dead\s+ejected\s.*failures 2 .*: ejected for 30s", rt.status_text(), re.M)


async def test_ejection_never_takes_out_more_than_allowed(backends: dict[str, int]) -> None:
    """Both servers refuse: only one may be ejected (50%); the other one keeps getting tries."""
    config = pool_config(
        server("x", closed_port()) + server("y", closed_port()),
        "retries = 0\n[pool.outlier]\nconsecutive_failures = 1\n",
    )
    async with running(config) as rt:
        keeper = rt.health["app"]
        for _ in range(6):
            status, _ = await get(lb_port(rt))
            assert status in (502, 503)
        assert sorted(r["status"] for r in keeper.status()) == ["ejected", "up"]
        assert len(rt.pools["app"].snapshot.servers) == 1


# --- (d) status output ---------------------------------------------------------------------


async def test_status_text_lists_every_server_with_its_status(backends: dict[str, int]) -> None:
    servers = (
        server("a", backends["a"])
        + server("b", backends["b"], ', state = "maint"')
        + server("spare", closed_port(), ", backup = true")
        + server("c", closed_port(), ', state = "drain"')
    )
    async with running(pool_config(servers)) as rt:
        assert await get(lb_port(rt)) == (200, "a")
        lines = rt.status_text().splitlines()
        assert lines[0] == "pool app"
        assert len(lines) == 5
        by_name = {line.split()[0]: line for line in lines[1:]}
        assert set(by_name) == {"a", "b", "spare", "c"}
        assert re.match(r"\s+a\s+up\s+active 0\s+requests 1\s+failures 0\s+since start: configured$", by_name["a"])
        assert re.match(r"\s+b\s+maint\s", by_name["b"])
        assert re.match(r"\s+spare\s+up\s+backup\s", by_name["spare"])
        assert re.match(r"\s+c\s+drain\s", by_name["c"])
        assert [r["server"] for r in rt.health["app"].status()] == ["a", "b", "spare", "c"]


async def test_a_check_meeting_an_upgrade_answer_keeps_running(backends: dict[str, int]) -> None:
    async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    odd = await asyncio.start_server(upgrade, "127.0.0.1", 0)
    try:
        health = '[pool.health]\ninterval = "100ms"\nrise = 1\nfall = 1\n'
        config = pool_config(server("a", backends["a"]) + server("odd", odd.sockets[0].getsockname()[1]), health)
        async with running(config) as rt:
            keeper = rt.health["app"]
            await until(
                lambda: row(keeper, "odd")["status"] == "down" or any(t.done() for t in keeper.tasks),
                "odd goes down (or a check task ends)",
            )
            ended = [repr(t.exception()) for t in keeper.tasks if t.done()]
            assert ended == []
            assert row(keeper, "odd")["status"] == "down"
            assert "101" in row(keeper, "odd")["reason"]
    finally:
        odd.close()
        await asyncio.wait_for(odd.wait_closed(), BOUND)


async def test_status_rows_carry_the_last_seconds_rate_and_latency(backends: dict[str, int]) -> None:
    rt = Runtime(
        parse_config(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"
        [[pool]]
        name = "app"
        servers = [ {{ address = "127.0.0.1:{backends["a"]}", name = "a" }} ]
    """)
    )
    await rt.start()
    try:
        keeper = rt.health["app"]
        load = keeper.health.states[0].server.load
        keeper._measure(keeper.sampled_at + 1.0)  # the first sample: nothing to compare yet
        assert keeper.status()[0]["rate"] == 0.0 and keeper.status()[0]["latency_ms"] is None
        load.requests += 30
        load.latency[0] += 30
        load.latency_sum += 0.06
        keeper._measure(keeper.sampled_at + 2.0)  # two seconds later
        row = keeper.status()[0]
        assert (row["rate"], row["latency_ms"]) == (15.0, 2.0)
    finally:
        await rt.stop(grace=0)
