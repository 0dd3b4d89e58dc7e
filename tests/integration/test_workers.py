"""`workers = N`: a control process and N worker processes on the same listeners, as real
processes on 127.0.0.1 (demo backends, threaded TCP servers, the admin API)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import textwrap
import time

from prometheus_client.parser import text_string_to_metric_families

from .conftest import STEELYARD, Balancer, Proc, pool_config, servers_toml
from .l4util import WAIT, l4_config, recv_line, wait_until
from .test_admin import admin_port, api
from .test_tcp_proxy import greeter

ADMIN = '\n[admin]\nbind = "127.0.0.1:0"\ntoken = "test-token-0123456789"\n'


def with_workers(toml: str, n: int = 2) -> str:
    return f"workers = {n}\n" + textwrap.dedent(toml) + ADMIN


def get(port: int, path: str = "/", headers: dict | None = None) -> tuple[int, str, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request("GET", path, headers={"Connection": "close", **(headers or {})})
        r = c.getresponse()
        body = r.read().decode()
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def server_of(body: str) -> str:
    return re.search(r'"server":"([^"]+)"', body).group(1)


def workers(lb) -> dict:
    status, body = api(admin_port(lb), "GET", "/api/v1/workers")
    assert status == 200
    return body


def spread_over_workers(lb) -> dict[bytes, list[socket.socket]]:
    """Open long-lived connections to a least_conn tcp listener over the greeters a, b and c, one
    by one (each relayed before the next), until both workers hold at least 2 (at most 60); after
    each, the servers' counts differ by at most one. The caller closes them."""
    per_server: dict[bytes, list[socket.socket]] = {b"a\n": [], b"b\n": [], b"c\n": []}
    paused = None  # a worker stopped (SIGSTOP) so that the other one accepts
    try:
        for n in range(1, 61):
            s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
            per_server[recv_line(s)].append(s)
            counts = sorted(len(v) for v in per_server.values())
            assert counts[-1] - counts[0] <= 1, counts  # least_conn over every worker's connections
            procs = workers(lb)["processes"]
            if n >= 12 and all(p["active"] >= 2 for p in procs):
                break
            if n >= 8 and paused is None and sorted(p["active"] >= 2 for p in procs) == [False, True]:
                # the kernel hands every accept to the worker it wakes first (on a busy machine, the
                # same one each time): stop that one for a while, so the other accepts the next ones
                paused = next(p["pid"] for p in procs if p["active"] >= 2)
                os.kill(paused, signal.SIGSTOP)
        held = [p["active"] for p in workers(lb)["processes"]]
        assert len(held) == 2 and min(held) >= 2, held  # both workers hold connections
    except BaseException:
        close_all(per_server)
        raise
    finally:
        if paused is not None:
            os.kill(paused, signal.SIGCONT)
    return per_server


def close_all(per_server: dict[bytes, list[socket.socket]]) -> None:
    for group in per_server.values():
        for s in group:
            s.close()


def serve_cli(path, extra: list[str], pattern: str) -> Balancer:
    """`steelyard serve --config PATH EXTRA...`, started once ``pattern`` is printed."""
    lb = Balancer.__new__(Balancer)
    Proc.__init__(lb, [*STEELYARD, "serve", "--config", str(path), *extra], pattern)
    lb.port = int(lb.wait_for(r"listener web serving http on [\d.]+:(\d+)")[0].group(1))
    return lb


def test_least_conn_spreads_long_lived_connections_across_workers(inline, balancer) -> None:
    servers = [inline(greeter(name)) for name in (b"a", b"b", b"c")]
    lb = balancer(with_workers(l4_config("tcp", [s.address for s in servers], pool='algorithm = "least_conn"')))
    per_server = spread_over_workers(lb)  # (connections arrive at whichever worker accepts first)
    try:
        status, pool = api(admin_port(lb), "GET", "/api/v1/pools/app")
        assert sorted(r["active"] for r in pool["servers"]) == sorted(len(v) for v in per_server.values())
    finally:
        close_all(per_server)


def test_a_killed_worker_is_replaced_and_the_listener_keeps_answering(backends, balancer) -> None:
    lb = balancer(with_workers(pool_config(servers_toml(backends(2)))))
    before = workers(lb)
    victim = before["processes"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    for _ in range(20):  # the other worker answers meanwhile (the socket is shared: none is refused)
        assert get(lb.port)[0] == 200
    lb.wait_for(rf"worker 0 \(pid {victim}\) was killed by SIGKILL; starting another")
    assert wait_until(lambda: len([p for p in workers(lb)["processes"] if p["serving"]]) == 2)
    after = workers(lb)
    assert after["restarts"] == 1 and victim not in [p["pid"] for p in after["processes"]]
    for _ in range(20):
        assert get(lb.port)[0] == 200
    lb.proc.send_signal(signal.SIGUSR1)  # the status table names the workers too
    lb.wait_for(r"^workers 2 \(1 restarts\)")
    new = next(p["pid"] for p in after["processes"] if p["index"] == 0)
    lb.wait_for(rf"worker 0  pid {new}  generation 1  active 0")


def test_metrics_total_every_workers_requests(backends, balancer) -> None:
    lb = balancer(with_workers(pool_config(servers_toml(backends(2)))))
    for _ in range(40):  # a new connection each: both workers serve some
        assert get(lb.port)[0] == 200
    status, raw = api(admin_port(lb), "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(raw.decode())}
    served = sum(
        s.value
        for s in families["steelyard_server_http_responses"].samples
        if s.name == "steelyard_server_http_responses_total"
    )
    assert served == 40


def test_health_checks_in_the_control_process_reach_every_worker(backends, balancer) -> None:
    a, b = backends(2)
    lb = balancer(
        with_workers(
            pool_config(
                servers_toml([a, b]), 'retry_header = true\n[pool.health]\npath = "/"\ninterval = "100ms"\nfall = 1'
            )
        )
    )
    a.kill()
    lb.wait_for(r"server s1.*down")
    for _ in range(20):  # no worker tries s1 any more: nothing needed a retry
        status, body, headers = get(lb.port)
        assert status == 200 and server_of(body) == "s2" and "x-steelyard-retries" not in headers


def test_a_server_added_through_the_admin_api_is_used_by_every_worker(backends, balancer) -> None:
    a, b = backends(2)
    lb = balancer(with_workers(pool_config(servers_toml([a]))))
    status, _ = api(admin_port(lb), "POST", "/api/v1/pools/app/servers", {"address": b.address, "name": "s2"})
    assert status == 201
    seen = {server_of(get(lb.port)[1]) for _ in range(20)}
    assert seen == {"s1", "s2"}


def test_reload_starts_a_new_generation_and_the_old_one_leaves(backends, balancer, tmp_path) -> None:
    a, b = backends(2)
    lb = balancer(with_workers(pool_config(servers_toml([a]))))
    old = [p["pid"] for p in workers(lb)["processes"]]
    (tmp_path / "steelyard.toml").write_text(with_workers(pool_config(servers_toml([a, b]))))
    lb.proc.send_signal(signal.SIGHUP)
    lb.wait_for(r"steelyard: reloaded")
    gone = lb.wait_for(r"generation 2 serving .*the previous ones \(pids ([\d, ]+)\) have finished")
    assert sorted(int(p) for p in gone[0].group(1).split(", ")) == sorted(old)
    procs = workers(lb)["processes"]
    assert [p["generation"] for p in procs] == [2, 2] and not set(old) & {p["pid"] for p in procs}
    seen = {server_of(get(lb.port)[1]) for _ in range(20)}
    assert seen == {"s1", "s2"}


def test_workers_on_the_command_line_and_a_clean_stop(backends, tmp_path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(textwrap.dedent(pool_config(servers_toml(backends(1)))))
    lb = serve_cli(path, ["--workers", "3"], r"3 workers serving \(pids (.*)\)")
    pids = [int(p) for p in lb.matches[0].group(1).split(", ")]
    assert get(lb.port)[0] == 200
    assert lb.terminate() == 0
    assert "steelyard: stopped" in "".join(lb.lines)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)  # no worker outlives the balancer


def test_udp_flows_through_several_workers_each_stick_to_a_server(balancer) -> None:
    from .l4util import DnsServer
    from .test_udp_proxy import ask

    dns = [DnsServer("127.0.0.11"), DnsServer("127.0.0.12")]
    try:
        lb = balancer(with_workers(l4_config("udp", [s.address for s in dns])))
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
        try:
            for c in clients:  # each worker bound the port (SO_REUSEPORT): a flow stays on one worker
                answers = {ask(c, lb.port) for _ in range(3)}
                assert len(answers) == 1 and answers <= {"127.0.0.11", "127.0.0.12"}
        finally:
            for c in clients:
                c.close()
    finally:
        for s in dns:
            s.close()


def test_tls_and_sticky_cookies_work_across_workers(tmp_path, backends, balancer) -> None:
    import shutil
    import subprocess

    from .testca import TestCA

    if shutil.which("curl") is None:
        raise AssertionError("curl is not installed (scripts/os-deps.sh installs it)")
    ca = TestCA(tmp_path)
    cert, key = ca.leaf("a.test")
    a, b = backends(2)
    lb = balancer(
        with_workers(
            pool_config(servers_toml([a, b]), '[pool.sticky]\nmode = "cookie"').replace(
                'pool = "app"', f'pool = "app"\n[listener.tls]\ncert = "{cert}"\nkey = "{key}"', 1
            )
        )
    )
    jar = tmp_path / "jar"

    def curl() -> str:
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                str(WAIT),
                "--cacert",
                str(ca.ca),
                "-b",
                str(jar),
                "-c",
                str(jar),
                "-H",
                "Connection: close",
                "--resolve",
                f"a.test:{lb.port}:127.0.0.1",
                f"https://a.test:{lb.port}/",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT + 5,
        )
        assert out.returncode == 0, out.stderr
        return server_of(out.stdout)

    first = curl()
    assert {curl() for _ in range(12)} == {first}  # a new connection each: any worker reads the cookie


def test_workers_share_one_access_log_without_mixing_lines(backends, balancer, tmp_path) -> None:
    import json

    log_file = tmp_path / "access.jsonl"
    lb = balancer(
        with_workers(
            pool_config(servers_toml(backends(2))).replace(
                'pool = "app"\n', f'pool = "app"\n        access_log = "{log_file}"\n', 1
            )
        )
    )
    for i in range(60):  # a new connection each: both workers answer some
        assert get(lb.port, f"/n/{i}")[0] == 200
    assert lb.terminate() == 0  # each worker flushes its log as it stops
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert sorted(x["path"] for x in lines) == sorted(f"/n/{i}" for i in range(60))


def test_no_worker_outlives_a_killed_control_process(backends, balancer) -> None:
    lb = balancer(with_workers(pool_config(servers_toml(backends(1)))))
    pids = [p["pid"] for p in workers(lb)["processes"]]
    lb.kill()  # SIGKILL: no goodbye; each worker sees its channel close, finishes and exits
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_reloads_under_load_fail_no_request(backends, balancer, tmp_path) -> None:
    import threading

    a, b = backends(2)
    lb = balancer(with_workers(pool_config(servers_toml([a, b]))))
    done, results = threading.Event(), {"ok": 0, "failed": []}

    def client() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline and results["ok"] < 20000:
            try:
                status = get(lb.port)[0]
            except OSError as exc:
                results["failed"].append(repr(exc))
                continue
            if status == 200:
                results["ok"] += 1
            else:
                results["failed"].append(status)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for generation in (2, 3, 4):
            lb.proc.send_signal(signal.SIGHUP)
            lb.wait_for(rf"workers of generation {generation} serving")
    finally:
        done.set()
        for t in threads:
            t.join(WAIT)
    print(f"reloads under load: {results['ok']} requests, failed: {results['failed']}")
    assert results["failed"] == [] and results["ok"] > 0


def test_reloads_under_keep_alive_load_lose_no_request(backends, balancer, tmp_path) -> None:
    """Clients that keep their connections (and send the next request at once) through repeated
    reloads: the retiring workers answer what arrives on those connections (Connection: close)
    rather than closing them under a request on its way. A client that does not retry sees none
    fail."""
    import threading

    a, b = backends(2)
    lb = balancer(with_workers(pool_config(servers_toml([a, b]))))
    done, results = threading.Event(), {"ok": 0, "failed": []}

    def client() -> None:
        deadline = time.monotonic() + 90
        c = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        while not done.is_set() and time.monotonic() < deadline and results["ok"] < 50000:
            try:
                c.request("GET", "/")  # (reconnects by itself after a Connection: close)
                r = c.getresponse()
                r.read()
            except (OSError, http.client.HTTPException) as exc:
                results["failed"].append(repr(exc))
                c.close()
                continue
            if r.status == 200:
                results["ok"] += 1
            else:
                results["failed"].append(r.status)
        c.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for generation in range(2, 8):
            lb.proc.send_signal(signal.SIGHUP)
            lb.wait_for(rf"workers of generation {generation} serving", timeout=30)
    finally:
        done.set()
        for t in threads:
            t.join(WAIT)
    print(f"reloads under keep-alive load: {results['ok']} requests, failed: {results['failed'][:5]}")
    assert results["failed"] == [] and results["ok"] > 0


def test_clustered_workers_count_the_other_balancers_requests(backends, balancer, tmp_path) -> None:
    """lb2 (one process, only server a) holds 3 slow requests on a; lb1 (two workers, a and b,
    least_conn) learns it through Redis and its workers send new requests to b."""
    import threading

    from .redisproc import RedisServer, need_redis
    from .test_cluster import cluster_config, poll, served_by

    need_redis()
    redis = RedisServer()
    try:
        a, b = backends(["a", "b"])
        lb1 = balancer(
            "workers = 2\n"
            + textwrap.dedent(cluster_config(servers_toml([a, b]), redis.url, "lb1", 'algorithm = "least_conn"')),
            "lb1.toml",
        )
        lb2 = balancer(cluster_config(servers_toml([a]), redis.url, "lb2", 'algorithm = "least_conn"'), "lb2.toml")
        p1 = admin_port(lb1)
        release = threading.Event()
        holders = [threading.Thread(target=lambda: get(lb2.port, "/sleep/4000")) for _ in range(3)]
        for t in holders:
            t.start()

        def remote_on_a() -> int:
            rows = api(p1, "GET", "/api/v1/pools/app")[1]["servers"]
            return next(r["remote_active"] for r in rows if r["server"] == "a")

        poll(lambda: remote_on_a() == 3, "lb1 sees lb2's 3 requests on a")
        assert [served_by(lb1.port) for _ in range(6)] == ["b"] * 6  # every worker adds lb2's load
        release.set()
        for t in holders:
            t.join(WAIT)
    finally:
        redis.kill()
