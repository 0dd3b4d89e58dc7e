"""steelyard.control.runtime.Runtime in-process on 127.0.0.1 ephemeral ports, in front of a demo backend."""

import asyncio
import json
import socket

import pytest

from steelyard.config import parse_config
from steelyard.control.runtime import Runtime
from steelyard.demo.backend import start_backend, stop_backend

BOUND = 10.0  # seconds: every wait in these tests is bounded by this


def config(backend_port, *binds):
    listeners = "".join(
        f'[[listener]]\nname = "l{i}"\nbind = "{bind}"\npool = "app"\n'
        for i, bind in enumerate(binds or ["127.0.0.1:0"])
    )
    return parse_config(
        f'shutdown_grace = "5s"\n{listeners}'
        f'[[pool]]\nname = "app"\nservers = [{{ address = "127.0.0.1:{backend_port}", name = "b1" }}]\n'
    )


@pytest.fixture
async def backend_port():
    server = await start_backend("b1", "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    await stop_backend(server)


@pytest.fixture
async def runtime(backend_port):
    rt = Runtime(config(backend_port))
    await rt.start()
    yield rt
    await asyncio.wait_for(rt.stop(grace=0), BOUND)


async def get(reader, writer, path="/hello"):
    """One keep-alive request; returns (status line, headers lower-cased, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    status, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.lower().split(": ", 1) for line in lines)
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), BOUND)
    return status, headers, body


async def test_a_request_goes_through_to_the_backend(runtime):
    port = runtime.listeners["l0"].port
    assert port != 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, headers, body = await get(reader, writer)
        assert status == "HTTP/1.1 200 OK"
        assert headers["x-served-by"] == "b1"
        echoed = json.loads(body)
        assert echoed["path"] == "/hello"
        sent = {name.lower(): value for name, value in echoed["headers"]}
        assert sent["x-forwarded-for"] == "127.0.0.1"
        assert sent["x-forwarded-host"] == "example.test"
        status, _, _ = await get(reader, writer, "/status/404")  # same connection: kept alive
        assert status == "HTTP/1.1 404 Not Found"
    finally:
        writer.close()
    server = runtime.pools["app"].snapshot.servers[0]
    assert (server.load.active, server.load.requests, server.load.failures) == (0, 2, 0)


async def test_stop_closes_an_idle_keep_alive_client_and_returns(backend_port):
    rt = Runtime(config(backend_port))
    await rt.start()
    listener = rt.listeners["l0"]
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        status, _, _ = await get(reader, writer)
        assert status == "HTTP/1.1 200 OK"
        upstreams = list(rt.pools["app"].upstreams.values())
        assert len(upstreams) == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(rt.stop(grace=5.0), BOUND)
        assert loop.time() - started < 5.0  # an idle connection does not wait for the grace period
        assert await asyncio.wait_for(reader.read(), BOUND) == b""  # closed by the proxy, no stray bytes
        assert not listener.connections
        assert not listener.server.is_serving()
        assert upstreams[0].closed and not upstreams[0].idle  # the kept-alive backend connection went too
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", listener.port)
    finally:
        writer.close()


async def test_a_bind_in_use_fails_start_and_leaves_nothing_listening(backend_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        rt = Runtime(config(backend_port, "127.0.0.1:0", f"127.0.0.1:{busy_port}"))
        with pytest.raises(OSError):
            await asyncio.wait_for(rt.start(), BOUND)
    first = rt.listeners["l0"]  # started before the second one failed
    assert "l1" not in rt.listeners
    assert not first.server.is_serving()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", first.port)
    assert rt.pools["app"].upstreams == {}  # closed (PoolRuntime.close)
