"""The admin API's writes against what a hostile web page or an oversized body can send
(docs/security.md): a loopback admin without a token refuses cross-site writes, rebound host
names and non-JSON bodies; bodies are bounded in size and nesting; nothing of it changes a pool."""

from __future__ import annotations

import http.client
import json
import select
import socket

import pytest

from .conftest import pool_config, servers_toml
from .inline import WAIT, read_until_eof
from .test_admin import admin_port, served_by

ADD = "/api/v1/pools/app/servers"


def tokenless_config(servers: str) -> str:
    return pool_config(servers) + '\n        [admin]\n        bind = "127.0.0.1:0"\n'


def write(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw[:1] == b"{" else {}
    finally:
        c.close()


@pytest.fixture
def admin(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(tokenless_config(servers_toml([a])))
    return lb, admin_port(lb)


def servers_of(port: int) -> list[str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    c.request("GET", "/api/v1/pools/app")
    rows = json.loads(c.getresponse().read())["servers"]
    c.close()
    return [r["server"] for r in rows]


def test_cross_site_and_rebound_writes_are_refused(admin):
    lb, port = admin
    body = json.dumps({"address": "127.0.0.1:9", "name": "evil"}).encode()
    own = f"127.0.0.1:{port}"
    refused = [
        # a cross-site form or fetch: text/plain needs no preflight, the Origin is the page's
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        # DNS rebinding: the page's own name, resolved to 127.0.0.1
        ({"Content-Type": "application/json", "Host": f"evil.example:{port}"}, 403),
        # not JSON, even from the same origin
        ({"Content-Type": "text/plain", "Origin": f"http://{own}"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
    ]
    for headers, want in refused:
        status, answer = write(port, "POST", ADD, body, headers)
        assert status == want, (headers, status, answer)
        assert answer.get("error"), answer
    status, _ = write(port, "POST", "/api/v1/reload", b"", {"Origin": "http://evil.example"})
    assert status == 403
    assert servers_of(port) == ["a"] and served_by(lb.port) == "a"
    # the dashboard's own writes (same origin, JSON) and ctl's (no Origin, localhost) still work
    for name, target, headers in (
        ("same", "127.0.0.1:9", {"Content-Type": "application/json", "Origin": f"http://{own}"}),
        ("local", "127.0.0.1:10", {"Content-Type": "application/json", "Host": f"localhost:{port}"}),
    ):
        body = json.dumps({"address": target, "name": name, "state": "maint"}).encode()
        status, answer = write(port, "POST", ADD, body, headers)
        assert status == 201, answer
    assert servers_of(port) == ["a", "same", "local"]


def test_oversized_and_deeply_nested_bodies_are_refused_with_4xx(admin):
    lb, port = admin
    json_type = {"Content-Type": "application/json"}
    deep = b"[" * 20_000 + b"]" * 20_000  # (within the size limit; far past Python's recursion limit)
    status, answer = write(port, "POST", ADD, deep, json_type)
    assert status == 400 and "nested" in answer["error"]
    status, answer = write(port, "POST", ADD, b'{"address": "' + b"x" * 200_000 + b'"}', json_type)
    assert status == 413
    rss_before = _rss(lb.pid())
    # a big chunked body: refused once it passes the limit, not read to its end
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(
            b"POST %b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % ADD.encode()
        )
        chunk = b"%x\r\n%b\r\n" % (65536, b" " * 65536)
        try:
            for _ in range(3000):  # up to ~200 MB, until the answer comes (long before)
                s.sendall(chunk)
                if select.select([s], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, _ = read_until_eof(s)
    assert data.startswith(b"HTTP/1.1 413"), data[:100]
    assert _rss(lb.pid()) - rss_before < 64 * 1024
    assert servers_of(port) == ["a"]


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
