"""Counters only grow: a reload (a server's weight changed, or nothing changed) and a worker
restart leave every request counter where it was, in `ctl` and on /metrics."""

from __future__ import annotations

import http.client
import json
import os
import signal

from prometheus_client.parser import text_string_to_metric_families

from .conftest import pool_config, servers_toml
from .l4util import wait_until
from .test_admin import WAIT, admin_config, admin_port, api, ctl
from .test_workers import with_workers, workers


def send(port: int, n: int, path: str = "/") -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    for _ in range(n):
        conn.request("GET", path)
        conn.getresponse().read()
    conn.close()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, raw = api(port, "GET", "/metrics", token=None)
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(raw.decode())
        for s in f.samples
    }


def served(port: int) -> dict[str, float]:
    """Responses per server as /metrics counts them (every status class)."""
    out: dict[str, float] = {}
    for (name, labels), value in scrape(port).items():
        if name == "steelyard_server_http_responses_total":
            server = dict(labels)["server"]
            out[server] = out.get(server, 0) + value
    return out


def ctl_requests(port: int) -> dict[str, int]:
    out = ctl(port, "servers", "app", "--json")
    assert out.returncode == 0, out.stderr
    return {s["server"]: s["requests"] for s in json.loads(out.stdout)["servers"]}


def test_a_reload_keeps_every_servers_counters(backends, balancer, tmp_path):
    a, b = backends(["a", "b"])
    lb = balancer(admin_config(servers_toml([a, b]), 'retries = 0\nalgorithm = "round_robin"'))
    port = admin_port(lb)
    send(lb.port, 20)
    send(lb.port, 4, "/status/503")
    assert ctl_requests(port) == {"a": 12, "b": 12}
    before = scrape(port)
    # b's weight changes (a new server object), a stays as it was
    (tmp_path / "steelyard.toml").write_text(
        admin_config(servers_toml([a, b], [1, 3]), 'retries = 0\nalgorithm = "round_robin"')
    )
    lb.proc.send_signal(signal.SIGHUP)
    lb.wait_for(r"steelyard: reloaded")
    assert ctl_requests(port) == {"a": 12, "b": 12}
    after = scrape(port)
    kept = [k for k in before if k[0].endswith(("_total", "_count", "_sum", "_bucket")) and "process_" not in k[0]]
    grew = {k: (before[k], after.get(k)) for k in kept if not after.get(k, -1) >= before[k]}
    assert grew == {}, grew  # every counter of before is there, none went down
    send(lb.port, 8)
    assert ctl_requests(port) == {"a": 16, "b": 16}
    assert served(port) == {"a": 16, "b": 16}


def test_worker_counters_survive_a_reload_and_a_killed_worker(backends, balancer, tmp_path):
    a, b = backends(["a", "b"])
    lb = balancer(with_workers(pool_config(servers_toml([a, b]))))
    port = admin_port(lb)
    for _ in range(6):  # connections of their own: both workers serve some
        send(lb.port, 5)
    assert sum(served(port).values()) == 30  # (a scrape collects every worker's counters first)
    victim = workers(lb)["processes"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    lb.wait_for(rf"worker 0 \(pid {victim}\) was killed by SIGKILL; starting another")
    assert wait_until(lambda: len([p for p in workers(lb)["processes"] if p["serving"]]) == 2)
    assert sum(served(port).values()) == 30
    (tmp_path / "steelyard.toml").write_text(with_workers(pool_config(servers_toml([a, b], [2, 1]))))
    lb.proc.send_signal(signal.SIGHUP)
    lb.wait_for(r"steelyard: reloaded")
    assert sum(served(port).values()) == 30
    lb.wait_for(r"generation 2 serving")
    for _ in range(2):
        send(lb.port, 5)
    assert sum(served(port).values()) == 40
    assert sum(ctl_requests(port).values()) == 40
