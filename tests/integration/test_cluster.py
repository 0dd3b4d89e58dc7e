"""Two `steelyard serve` processes clustered through a real redis-server (127.0.0.1): shared runtime
changes, a shared source stick table, self-registered servers, and losing Redis under load.
Timings are printed (run with -s), never asserted."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time

import pytest
import redis

from .conftest import STEELYARD, Proc, pool_config, servers_toml
from .redisproc import RedisServer, free_port, need_redis
from .test_admin import TOKEN, admin_port, api, served_by

WAIT = 15.0


@pytest.fixture
def redis_server():
    need_redis()
    server = RedisServer()
    yield server
    server.kill()


def cluster_config(servers: str, url: str, node: str, extra: str = "") -> str:
    return (
        pool_config(servers, extra)
        + f"""
        [admin]
        bind = "127.0.0.1:0"
        token = "{TOKEN}"

        [cluster]
        redis = "{url}"
        node = "{node}"
        heartbeat = "200ms"
        expire = "1s"
        sync = "500ms"
        load_interval = "100ms"
    """
    )


def two_nodes(balancer, servers: str, url: str, extra: str = ""):
    lb1 = balancer(cluster_config(servers, url, "lb1", extra), "lb1.toml")
    lb2 = balancer(cluster_config(servers, url, "lb2", extra), "lb2.toml")
    return (lb1, admin_port(lb1)), (lb2, admin_port(lb2))


def poll(condition, what: str, timeout: float = WAIT) -> float:
    """Seconds until ``condition()`` held (polled every 10 ms), or fail naming ``what``."""
    start = time.monotonic()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout}s: {what}")


def ctl_cluster(port: int) -> str:
    done = subprocess.run(
        [*STEELYARD, "ctl", "--admin", f"http://127.0.0.1:{port}", "cluster"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def server_names(port: int) -> dict[str, str]:
    status, body = api(port, "GET", "/api/v1/pools/app")
    assert status == 200, body
    return {s["server"]: s["status"] for s in body["servers"]}


def test_a_change_on_one_node_reaches_the_other_and_both_list_the_cluster(backends, balancer, redis_server):
    a, b = backends(["a", "b"])
    (lb1, p1), (lb2, p2) = two_nodes(balancer, servers_toml([a]), redis_server.url)
    assert served_by(lb2.port) == "a"
    status, body = api(p1, "POST", "/api/v1/pools/app/servers", {"address": b.address, "name": "b"})
    assert status == 201, body
    delay = poll(lambda: served_by(lb2.port) == "b", "server b added on lb1 serves through lb2")
    print(f"\nadded on lb1 -> traffic through lb2 after {delay * 1000:.0f} ms")
    status, _ = api(p1, "PATCH", "/api/v1/pools/app/servers/a", {"state": "drain"})
    assert status == 200
    poll(lambda: server_names(p2).get("a") == "drain", "a drained on lb2")
    assert all(served_by(lb2.port) == "b" for _ in range(10))
    status, _ = api(p2, "PATCH", "/api/v1/pools/app", {"algorithm": "least_conn"})
    assert status == 200
    poll(lambda: api(p1, "GET", "/api/v1/pools/app")[1]["algorithm"] == "least_conn", "algorithm on lb1")
    status, _ = api(p2, "DELETE", "/api/v1/pools/app/servers/b")
    assert status == 202
    poll(lambda: "b" not in server_names(p1), "b removed on lb1")
    status, info = api(p1, "GET", "/api/v1/cluster")
    assert status == 200 and info["enabled"] and not info["degraded"]
    assert sorted(n["node"] for n in info["nodes"]) == ["lb1", "lb2"]

    def views() -> list:
        return [n["servers"]["app"] for n in api(p1, "GET", "/api/v1/cluster")[1]["nodes"]]

    poll(lambda: views() == [{"a": "drain"}] * 2, "both heartbeats show a drained and b gone")
    out = ctl_cluster(p2)
    assert "lb1" in out and "lb2" in out and "app/a: drain" in out, out
    # a node that starts later gets the current state
    lb3 = balancer(cluster_config(servers_toml([a]), redis_server.url, "lb3"), "lb3.toml")
    p3 = admin_port(lb3)
    poll(lambda: server_names(p3) == {"a": "drain"}, "lb3 adopted the shared state (a drained, b removed)")


def test_source_stickiness_learned_on_one_node_holds_on_the_other(backends, balancer, redis_server):
    servers = backends(["a", "b", "c"])
    sticky = '[pool.sticky]\nmode = "source"\n'
    (lb1, _), (lb2, _) = two_nodes(balancer, servers_toml(servers), redis_server.url, sticky)
    first = served_by(lb1.port)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    poll(lambda: client.get("steelyard:stick:app:127.0.0.1") == first, "the stick entry stored in Redis")
    client.close()
    seen = [served_by(lb2.port) for _ in range(12)]
    assert seen == [first] * 12


def test_a_registered_server_joins_both_nodes_and_leaves_when_its_registration_expires(
    backends, balancer, redis_server
):
    a, r = backends(["a", "r"])
    (lb1, p1), (lb2, p2) = two_nodes(balancer, servers_toml([a]), redis_server.url, 'slow_start = "1s"')
    reg = Proc(
        [
            *STEELYARD,
            "register",
            "--redis",
            redis_server.url,
            "--pool",
            "app",
            "--address",
            r.address,
            "--name",
            "r",
            "--ttl",
            "1s",
        ],
        r"registered",
    )
    try:
        d1 = poll(lambda: "r" in server_names(p1), "r on lb1", 2.5)
        d2 = poll(lambda: "r" in server_names(p2), "r on lb2", 2.5)
        poll(lambda: served_by(lb2.port) == "r", "r serves through lb2")
        print(f"\nregistered server listed on lb1 after {d1 * 1000:.0f} ms, on lb2 after +{d2 * 1000:.0f} ms")
        status, body = api(p1, "GET", "/api/v1/pools/app")
        assert next(s for s in body["servers"] if s["server"] == "r")["origin"] == "registered"
    finally:
        reg.kill()  # (SIGKILL: no clean deregistration, the TTL runs out)
    gone = poll(lambda: "r" not in server_names(p1) and "r" not in server_names(p2), "r drained out of both")
    print(f"registration killed -> removed from both nodes after {gone * 1000:.0f} ms")
    assert all(served_by(lb1.port) == "a" for _ in range(5))


@pytest.mark.parametrize("how", ["register", "backend --register"])
def test_sigterm_deregisters_at_once_long_before_the_ttl(how, backends, balancer, redis_server):
    (a,) = backends(["a"])
    (lb1, p1), _ = two_nodes(balancer, servers_toml([a]), redis_server.url)
    if how == "register":
        (r,) = backends(["r"])
        argv = [*STEELYARD, "register", "--redis", redis_server.url, "--pool", "app", "--address", r.address]
        ready = r"registered .* as r"
    else:
        port = free_port()
        argv = [*STEELYARD, "backend", "--name", "r", "--listen", f"127.0.0.1:{port}"]
        argv += ["--register", redis_server.url, "--pool", "app"]
        ready = r"backend r listening"  # (its SIGTERM handler is in place; the registration shows on lb1)
    reg = Proc([*argv, "--name", "r", "--ttl", "60s"], ready)
    try:
        poll(lambda: "r" in server_names(p1), "r on lb1")
        assert reg.terminate() == 0
    finally:
        reg.kill()
    assert any("deregistered r from pool app" in line for line in reg.lines), reg.lines
    poll(lambda: "r" not in server_names(p1), "r drained out of lb1 (its 60 s TTL cannot explain it)")
    assert redis.Redis.from_url(redis_server.url).exists("steelyard:reg:app:r") == 0


def test_losing_redis_under_load_fails_no_request_and_changes_flow_again_once_it_returns(
    backends, balancer, redis_server
):
    a, b, c = backends(["a", "b", "c"])
    (lb1, p1), (lb2, p2) = two_nodes(balancer, servers_toml([a]), redis_server.url)
    status, _ = api(p1, "POST", "/api/v1/pools/app/servers", {"address": b.address, "name": "b"})
    assert status == 201
    poll(lambda: "b" in server_names(p2), "b on lb2")
    failures: list[str] = []
    done = [0]
    stop = threading.Event()

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        for _ in range(20_000):  # bounded in count, and by the test's end
            if stop.is_set():
                break
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures.append(f"status {resp.status}")
                done[0] += 1
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        conn.close()

    threads = [threading.Thread(target=client, args=(lb.port,), daemon=True) for lb in (lb1, lb2, lb1, lb2)]
    for t in threads:
        t.start()
    try:
        port = redis_server.port
        redis_server.kill()
        poll(lambda: api(p1, "GET", "/api/v1/status")[1]["cluster"]["degraded"], "lb1 degraded")
        poll(lambda: api(p2, "GET", "/api/v1/status")[1]["cluster"]["degraded"], "lb2 degraded")
        metrics = api(p1, "GET", "/metrics")[1]
        assert b'steelyard_cluster_degraded{node="lb1"} 1.0' in metrics
        before = done[0]
        poll(lambda: done[0] > before + 200, "requests keep flowing without Redis")
        assert server_names(p2).keys() == {"a", "b"}  # the last known state stays
        back = RedisServer(port)
        try:
            healed = poll(lambda: not api(p2, "GET", "/api/v1/status")[1]["cluster"]["degraded"], "lb2 reconnected")
            poll(lambda: not api(p1, "GET", "/api/v1/status")[1]["cluster"]["degraded"], "lb1 reconnected")
            print(f"\nRedis back -> lb2 reconnected after {healed * 1000:.0f} ms; {done[0]} requests so far")
            status, _ = api(p1, "POST", "/api/v1/pools/app/servers", {"address": c.address, "name": "c"})
            assert status == 201
            poll(lambda: "c" in server_names(p2), "a change after Redis returned reaches lb2")
            assert server_names(p2).keys() == {"a", "b", "c"}  # (the empty Redis was seeded, not adopted)
        finally:
            stop.set()
            for t in threads:
                t.join(WAIT)
            back.kill()
    finally:
        stop.set()
    assert failures == []
    assert json.dumps(done[0])  # (how many requests ran is printed above)
