"""The L7 proxy's HTTP/1.1 behaviour, end to end: real `steelyard serve`, real backends, real clients."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
import time

import httpx
import pytest

from steelyard.demo.backend import expected_bytes_sha256

from .conftest import address_config, pool_config, servers_toml, simple_config
from .rawhttp import RawConnection, get

MiB = 1024 * 1024


@pytest.fixture
def one(backends, balancer):
    """One backend behind the balancer."""
    (b,) = backends(["only"])
    return balancer(simple_config([b]))


def test_keep_alive_on_both_sides(one):
    with RawConnection(one.port) as c:
        upstream_peers = set()
        for i in range(5):
            c.send(get(f"/k{i}"))
            status, headers, body = c.response()
            assert status == 200
            assert json.loads(body)["path"] == f"/k{i}"
            upstream_peers.add(json.loads(body)["client"])
    # five requests on one client connection travelled on one upstream connection
    assert len(upstream_peers) == 1


def test_pipelined_requests_are_answered_in_order(one):
    with RawConnection(one.port) as c:
        c.send(get("/first") + get("/second") + get("/third"))
        paths = [json.loads(c.response()[2])["path"] for _ in range(3)]
    assert paths == ["/first", "/second", "/third"]


def test_forwarded_headers_and_hop_by_hop_rules(one):
    with RawConnection(one.port) as c:
        c.send(
            get(
                "/h",
                host="site.example.test:8080",
                extra=(
                    "X-Forwarded-For: 203.0.113.7\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Connection: keep-alive, X-Private\r\n"
                    "X-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
                    "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Kept: yes\r\n"
                ),
            )
        )
        status, _, body = c.response()
    assert status == 200
    seen = {}
    for name, value in json.loads(body)["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    assert seen["host"] == ["site.example.test:8080"]
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["site.example.test:8080"]
    assert seen["x-kept"] == ["yes"]
    for dropped in ("x-private", "keep-alive", "te", "proxy-authorization", "connection", "upgrade"):
        assert dropped not in seen, dropped


def test_head_204_and_304_carry_no_body_and_keep_the_connection(one):
    with RawConnection(one.port) as c:
        c.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = c.response("HEAD")
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0
        for code in (204, 304):
            c.send(get(f"/status/{code}"))
            status, headers, body = c.response()
            assert (status, body) == (code, b"")
        c.send(get("/after"))
        assert json.loads(c.response()[2])["path"] == "/after"


def test_chunked_upload_is_forwarded_intact(one):
    blob = bytes(range(256)) * 4000

    def gen():
        for i in range(0, len(blob), 7001):
            yield blob[i : i + 7001]

    r = httpx.post(one.url + "/upload", content=gen())
    assert r.status_code == 200
    seen = r.json()
    assert seen["body_bytes"] == len(blob)
    assert seen["body_sha256"] == hashlib.sha256(blob).hexdigest()
    framing = {k.lower(): v for k, v in seen["headers"]}
    assert framing["transfer-encoding"] == "chunked" and "content-length" not in framing


def test_100_mib_each_way_streams_without_growing_memory(one):
    before = one.rss_kib()
    size = 100 * MiB
    digest = hashlib.sha256()
    got = 0
    with httpx.stream("GET", f"{one.url}/bytes/{size}", timeout=60) as r:
        assert r.status_code == 200
        for part in r.iter_raw():
            digest.update(part)
            got += len(part)
    assert got == size and digest.hexdigest() == expected_bytes_sha256(size)

    block = hashlib.sha256(b"steelyard").digest() * 2048  # 64 KiB
    sent = hashlib.sha256()

    def upload():
        for _ in range(size // len(block)):
            sent.update(block)
            yield block

    r = httpx.post(f"{one.url}/upload", content=upload(), timeout=60)
    assert r.status_code == 200
    assert r.json()["body_bytes"] == size and r.json()["body_sha256"] == sent.hexdigest()

    with open(f"/proc/{one.pid()}/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    assert peak - before < 50 * 1024, f"RSS grew by {(peak - before) / 1024:.1f} MiB"


def test_response_delimited_by_close_reaches_http11_client_chunked(balancer):
    """A server that ends its body by closing; the client still gets a framed response."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve_once():
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")

    t = threading.Thread(target=serve_once, daemon=True)
    t.start()
    lb = balancer(address_config(port))
    with RawConnection(lb.port) as c:
        c.send(get("/"))
        status, headers, body = c.response()
    t.join(10)
    srv.close()
    assert (status, body) == (200, b"until the end")
    assert headers["transfer-encoding"] == "chunked"


def test_routing_on_host_path_and_header(backends, balancer):
    default, api, canary, wild = backends(["default", "api", "canary", "wild"])
    lb = balancer(
        f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "default"

        [[listener.route]]
        header = {{ name = "X-Canary", value = "1" }}
        pool = "canary"

        [[listener.route]]
        host = "api.example.test"
        path_prefix = "/api/"
        pool = "api"

        [[listener.route]]
        host = "*.example.test"
        pool = "wild"

        [[pool]]
        name = "default"
        {servers_toml([default])}
        [[pool]]
        name = "api"
        {servers_toml([api])}
        [[pool]]
        name = "canary"
        {servers_toml([canary])}
        [[pool]]
        name = "wild"
        {servers_toml([wild])}
        """
    )

    def served(path, host, **headers):
        return httpx.get(lb.url + path, headers={"Host": host, **headers}).headers["x-served-by"]

    assert served("/api/users", "api.example.test") == "api"
    assert served("/api/users", "API.example.test:80") == "api"
    assert served("/other", "api.example.test") == "wild"  # path does not match the api route
    assert served("/", "www.example.test") == "wild"
    assert served("/", "example.test") == "default"  # the wildcard needs a label before the suffix
    assert served("/api/users", "api.example.test", **{"X-Canary": "1"}) == "canary"
    assert served("/", "elsewhere.test") == "default"


def test_websocket_is_tunnelled_after_101(balancer):
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def main():
        async def echo(ws):
            async for msg in ws:
                await ws.send(f"echo:{msg}")

        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            lb = await asyncio.to_thread(balancer, address_config(port))
            async with connect(f"ws://127.0.0.1:{lb.port}/chat") as ws:
                replies = []
                for i in range(20):
                    await ws.send(f"m{i}")
                    replies.append(await ws.recv())
                await ws.send("x" * 200_000)
                big = await ws.recv()
        return replies, big

    replies, big = asyncio.run(main())
    assert replies == [f"echo:m{i}" for i in range(20)]
    assert big == "echo:" + "x" * 200_000


def test_curl_sees_the_backends(backends, balancer):
    lb = balancer(simple_config(backends(2)))
    served = set()
    for _ in range(4):
        out = subprocess.run(
            ["curl", "-s", "-D", "-", "-o", "/dev/null", lb.url + "/"], capture_output=True, text=True, timeout=10
        ).stdout
        served |= {line.split(":", 1)[1].strip() for line in out.splitlines() if line.lower().startswith("x-served-by")}
    assert served == {"s1", "s2"}


def test_access_log_writes_one_json_line_per_answered_request(backends, balancer, tmp_path):
    (a,) = backends(["a"])
    log_file = tmp_path / "access.jsonl"
    lb = balancer(
        pool_config(servers_toml([a])).replace(
            'pool = "app"\n', f'pool = "app"\n        access_log = "{log_file}"\n', 1
        )
    )
    for path in ("/hello?x=1", "/status/404"):
        assert httpx.get(lb.url + path).status_code in (200, 404)
    assert lb.terminate() == 0  # the log is flushed on stop
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(x["method"], x["path"], x["status"], x["server"], x["pool"], x["retries"]) for x in lines] == [
        ("GET", "/hello?x=1", 200, "a", "app", 0),
        ("GET", "/status/404", 404, "a", "app", 0),
    ]
    assert all(x["client"] == "127.0.0.1" and x["duration_ms"] >= 0 and x["time"] > 1e9 for x in lines)
    assert lines[1]["bytes"] > len("404 Not Found\n") and lines[0]["bytes"] > lines[1]["bytes"]  # (heads included)


def test_access_log_times_each_request_from_its_own_start(backends, balancer, tmp_path):
    """A 50 ms backend, five requests in a row on one keep-alive connection: every line's
    ``time`` lies within the client's own view of that request and its ``duration_ms`` is the
    backend's delay or more, never more than the client waited (the listener's sweep runs once a
    second here, so a start taken from its cached clock would be up to a second early)."""
    (slow,) = backends([("slow", "50ms")])
    log_file = tmp_path / "access.jsonl"
    lb = balancer(
        pool_config(servers_toml([slow])).replace(
            'pool = "app"\n', f'pool = "app"\n        access_log = "{log_file}"\n', 1
        )
    )
    seen = []
    with httpx.Client() as client:
        for _ in range(5):
            t0 = time.time()
            assert client.get(lb.url + "/").status_code == 200
            seen.append((t0, time.time()))
    assert lb.terminate() == 0
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(lines) == 5
    slack = 0.005  # (the loop's clock counts milliseconds)
    for line, (t0, t1) in zip(lines, seen):
        assert t0 - slack <= line["time"] <= t1, (line, t0, t1)
        assert 50 <= line["duration_ms"] <= (t1 - t0 + slack) * 1000, (line, t0, t1)
    assert sorted({x["time"] for x in lines}) == [x["time"] for x in lines]  # five distinct, in order
