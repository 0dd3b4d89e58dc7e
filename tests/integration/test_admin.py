"""The admin API, `steelyard ctl`, runtime changes kept across restarts, and /metrics, against
real `steelyard serve` and `steelyard backend` processes on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from steelyard.control.admin import AdminApp

from .conftest import STEELYARD, pool_config, servers_toml

WAIT = 15.0
TOKEN = "test-token-0123456789"


def admin_config(servers: str, extra: str = "") -> str:
    """``pool_config`` (one listener, pool "app") with an admin listener on an ephemeral port."""
    return (
        pool_config(servers, extra)
        + f"""
        [admin]
        bind = "127.0.0.1:0"
        token = "{TOKEN}"
    """
    )


def admin_port(lb) -> int:
    for line in lb.lines:
        m = re.search(r"admin API on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no admin line in {lb.lines}")


def api(port: int, method: str, path: str, body=None, token: str | None = TOKEN) -> tuple[int, object]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if r.getheader("content-type", "").startswith("application/json") else raw)
    finally:
        c.close()


def served_by(port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        return r.getheader("x-served-by")
    finally:
        c.close()


def ctl(port: int, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    argv = [*STEELYARD, "ctl", "--admin", f"http://127.0.0.1:{port}", *(["--token", token] if token else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT)


def test_scale_out_and_in_under_load_and_the_changes_survive_a_restart(backends, balancer):
    a, b = backends(["a", "b"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    stop = threading.Event()
    failures: list[str] = []
    seen: list[tuple[float, str]] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        for _ in range(100_000):  # bounded in count and by the test's own end
            if stop.is_set():
                break
            try:
                sent = time.monotonic()
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    failures.append(f"status {r.status}")
                seen.append((sent, r.getheader("x-served-by")))  # (when it was sent, who answered)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        added_at = time.monotonic()
        status, body = api(port, "POST", "/api/v1/pools/app/servers", {"address": b.address, "name": "b"})
        assert status == 201 and body["origin"] == "runtime", body
        deadline = time.monotonic() + WAIT
        while not any(who == "b" and t > added_at for t, who in list(seen)) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling what the clients observe
        first_b = next(t for t, who in list(seen) if who == "b" and t > added_at)
        status, body = api(port, "DELETE", "/api/v1/pools/app/servers/a")
        assert status == 202
        removed_at = time.monotonic()
        deadline = time.monotonic() + WAIT
        while sum(1 for t, who in list(seen) if t > removed_at) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)
    assert failures == []
    after = [who for t, who in seen if t > removed_at]  # sent once the API had answered
    assert len(after) >= 200 and set(after) == {"b"}
    print(f"\nscale-out: first request on the added server {1000 * (first_b - added_at):.0f} ms after the API call")

    lb.terminate()
    again = balancer(admin_config(servers_toml([a])))  # same config file: its state file comes back
    status, body = api(admin_port(again), "GET", "/api/v1/status", token=None)
    assert [(s["server"], s["origin"]) for s in body["servers"]] == [("b", "runtime")]
    assert {served_by(again.port) for _ in range(4)} == {"b"}


def test_api_errors_name_the_field_and_writes_need_the_token(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    assert api(port, "POST", "/api/v1/pools/app/servers", {"address": "127.0.0.1:1"}, token=None)[0] == 401
    assert api(port, "POST", "/api/v1/pools/app/servers", {"address": "127.0.0.1:1"}, token="wrong" * 4)[0] == 401
    cases = [
        ("POST", "/api/v1/pools/app/servers", {"address": "nohost"}, 400, "address"),
        ("POST", "/api/v1/pools/app/servers", {"address": "127.0.0.1:9", "weight": 5000}, 400, "weight"),
        ("POST", "/api/v1/pools/app/servers", {"address": "127.0.0.1:9", "colour": "red"}, 400, "colour"),
        ("POST", "/api/v1/pools/app/servers", {"address": a.address, "name": "x"}, 409, "address"),
        ("POST", "/api/v1/pools/app/servers", {"address": "127.0.0.1:9", "name": "a"}, 409, "name"),
        ("POST", "/api/v1/pools/nope/servers", {"address": "127.0.0.1:9"}, 404, "pool"),
        ("PATCH", "/api/v1/pools/app/servers/a", {"state": "asleep"}, 400, "state"),
        ("PATCH", "/api/v1/pools/app/servers/zz", {"weight": 2}, 404, "server"),
        ("PATCH", "/api/v1/pools/app", {"algorithm": "fastest"}, 400, "algorithm"),
        ("PATCH", "/api/v1/pools/app", {"algorithm": ".x:Y"}, 400, "algorithm"),
        ("POST", "/api/v1/pools/app/servers", {"address": "h" * 300 + ":80"}, 400, "address"),
        ("POST", "/api/v1/pools/app/servers", {"address": "a..b:80"}, 400, "address"),
    ]
    for method, path, body, want, field in cases:
        status, answer = api(port, method, path, body)
        assert (status, answer["field"]) == (want, field), (method, path, body, answer)
    status, answer = api(port, "POST", "/api/v1/pools/app/servers", None)
    assert status == 400 and "address is required" in answer["error"]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    c.request(
        "PATCH",
        "/api/v1/pools/app",
        body=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    r = c.getresponse()
    assert r.status == 400 and b"not JSON" in r.read()
    c.close()
    assert served_by(lb.port) == "a"  # nothing of that changed the pool
    status, doc = api(port, "GET", "/api/v1/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3.") and "/api/v1/pools/{pool}/servers" in doc["paths"]
    routes = {r.path for r in AdminApp(None, None, None).app.routes} - {"/", "/favicon.ico", "/favicon.svg"}
    assert routes <= set(doc["paths"]), routes - set(doc["paths"])  # every route of the API is documented


def test_a_large_pools_servers_come_in_pages_filtered_by_status(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    for i in range(5):  # (nothing listens there: no checks in this pool, so they stay up)
        body = {"address": f"127.0.0.1:{9 + i}", "name": f"extra{i}"}
        assert api(port, "POST", "/api/v1/pools/app/servers", body)[0] == 201
    assert api(port, "PATCH", "/api/v1/pools/app/servers/extra3", {"state": "maint"})[0] == 200
    status, whole = api(port, "GET", "/api/v1/pools/app")
    names = [r["server"] for r in whole["servers"]]
    assert status == 200 and len(names) == 6 and "page" not in whole
    assert whole["by_status"] == {"up": 5, "maint": 1}
    status, page = api(port, "GET", "/api/v1/pools/app?offset=2&limit=3")
    assert [r["server"] for r in page["servers"]] == names[2:5]
    assert page["page"] == {"offset": 2, "limit": 3, "matched": 6}
    status, maint = api(port, "GET", "/api/v1/pools/app?status=maint")
    assert [r["server"] for r in maint["servers"]] == ["extra3"] and maint["page"]["matched"] == 1
    assert api(port, "GET", "/api/v1/pools/app?offset=9")[1]["servers"] == []
    for bad in ("limit=-1", "offset=two", "limit=1.5"):
        status, answer = api(port, "GET", f"/api/v1/pools/app?{bad}")
        assert status == 400 and answer["field"] == bad.split("=")[0], answer


def test_metrics_count_exactly_the_requests_clients_sent(backends, balancer):
    a, b = backends(["a", "b"])
    lb = balancer(admin_config(servers_toml([a, b])))
    port = admin_port(lb)
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
    sent = {"200": 37, "404": 5, "503": 3}
    for code, n in sent.items():
        for _ in range(n):
            conn.request("GET", f"/status/{code}")
            conn.getresponse().read()
    conn.close()
    status, text = api(port, "GET", "/metrics", token=None)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    by_class: dict[str, float] = {}
    for s in families["steelyard_server_http_responses"].samples:
        if s.name == "steelyard_server_http_responses_total":
            by_class[s.labels["code"]] = by_class.get(s.labels["code"], 0) + s.value
    assert by_class == {"1xx": 0, "2xx": 37, "3xx": 0, "4xx": 5, "5xx": 3}
    counts = [s for s in families["steelyard_server_response_time_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 45
    sizes = sum(s.value for s in families["steelyard_server_bytes_out"].samples if s.name.endswith("_total"))
    assert sizes > 45 * len("HTTP/1.1 200 OK\r\n")  # every response, head and body, as servers sent it
    sent = sum(s.value for s in families["steelyard_server_bytes_in"].samples if s.name.endswith("_total"))
    assert 45 * len("GET /status/200 HTTP/1.1\r\n") < sent < 45 * 1000  # 45 heads as forwarded
    usable = {s.labels["server"]: s.value for s in families["steelyard_server_usable"].samples}
    assert usable == {"a": 1.0, "b": 1.0}


def test_ctl_lists_drains_reweights_and_switches_the_algorithm(backends, balancer):
    a, b = backends(["a", "b"])
    lb = balancer(admin_config(servers_toml([a, b])))
    port = admin_port(lb)
    out = ctl(port, "servers", "app")
    assert out.returncode == 0 and "127.0.0.1" in out.stdout and "up" in out.stdout, out
    assert ctl(port, "drain", "app", "a").returncode == 0
    assert {served_by(lb.port) for _ in range(6)} == {"b"}
    assert ctl(port, "ready", "app", "a").returncode == 0
    assert ctl(port, "weight", "app", "a", "5").returncode == 0
    assert ctl(port, "algorithm", "app", "weighted_round_robin").returncode == 0
    picks = [served_by(lb.port) for _ in range(12)]
    assert picks.count("a") == 10 and picks.count("b") == 2
    listed = json.loads(ctl(port, "--json", "servers", "app").stdout)
    assert listed["algorithm"] == "weighted_round_robin"
    assert {s["server"]: s["weight"] for s in listed["servers"]} == {"a": 5, "b": 1}
    denied = ctl(port, "drain", "app", "a", token=None)
    assert denied.returncode == 1 and "401" in denied.stderr
    unknown = ctl(port, "drain", "app", "zz")
    assert unknown.returncode == 1 and "no server 'zz'" in unknown.stderr
    gone = ctl(1, "pools")
    assert gone.returncode == 2 and "cannot reach" in gone.stderr


@pytest.mark.parametrize("bind", ["0.0.0.0:9901", "[::]:9901", "192.0.2.1:9901"])
def test_an_admin_listener_reachable_from_elsewhere_needs_a_token(tmp_path, bind):
    cfg = tmp_path / "open.toml"
    cfg.write_text(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [[pool]]
        name = "app"
        servers = [ {{ address = "127.0.0.1:9" }} ]

        [admin]
        bind = "{bind}"
    """)
    out = subprocess.run([*STEELYARD, "check", "--config", str(cfg)], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 2, out
    assert f"admin: the admin listener on {bind} is reachable from other hosts" in out.stderr


def test_twenty_reloads_under_load_drop_nothing_and_an_invalid_one_is_refused(backends, balancer, tmp_path):
    a, b = backends(["a", "b"])
    text = admin_config(servers_toml([a]))
    lb = balancer(text)
    port = admin_port(lb)
    config_file = tmp_path / "steelyard.toml"
    stop = threading.Event()
    failures: list[str] = []
    answered = []

    def client(keep_alive: bool) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        for _ in range(100_000):  # bounded in count and by the test's own end
            if stop.is_set():
                break
            try:
                conn.request("GET", "/", headers={} if keep_alive else {"Connection": "close"})
                r = conn.getresponse()
                r.read()
                (answered if r.status == 200 else failures).append(r.getheader("x-served-by") or r.status)
            except (OSError, http.client.HTTPException) as exc:  # a refused connection lands here
                failures.append(repr(exc))
            if not keep_alive or failures:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        conn.close()

    threads = [threading.Thread(target=client, args=(i % 2 == 0,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            servers = servers_toml([a] if i % 2 else [a, b])  # every other reload adds b, the next takes it away
            config_file.write_text(admin_config(servers))
            lb.proc.send_signal(signal.SIGHUP)
            lb.wait_for(r"steelyard: reloaded")
        config_file.write_text(
            text.replace('name = "app"\n        servers', 'name = "app"\n        algorithm = 7\n        servers')
        )
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(r"steelyard: reload refused: .*algorithm")
        status, answer = api(port, "POST", "/api/v1/reload")
        assert status == 400 and answer["field"] == "config" and "algorithm" in answer["error"]
        config_file.write_text(admin_config(servers_toml([b])))
        assert ctl(port, "reload").returncode == 0
        before = len(answered)
        deadline = time.monotonic() + WAIT
        while len(answered) < before + 50 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling what the clients observe
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)
    assert failures == []
    assert len(answered) > 100 and set(answered[-20:]) == {"b"}  # the last reload moved everything to b


def test_reload_warns_of_an_overridden_edit_and_discard_runtime_lets_the_file_decide(backends, balancer, tmp_path):
    a, b, c = backends(["a", "b", "c"])
    config_file = tmp_path / "steelyard.toml"
    lb = balancer(admin_config(servers_toml([a, b])))
    port = admin_port(lb)
    assert ctl(port, "weight", "app", "a", "2").returncode == 0
    assert ctl(port, "add", "app", c.address, "--name", "c").returncode == 0

    config_file.write_text(config_file.read_text().replace('name = "a", weight = 1', 'name = "a", weight = 5'))
    assert ctl(port, "reload").returncode == 0
    lb.wait_for(
        r"reload: pool app: server a: the file's weight changed 1 -> 5, but a runtime change keeps 2 "
        r"\(drop it with: steelyard ctl reload --discard-runtime app\)"
    )

    def weights() -> dict[str, int]:
        status, body = api(port, "GET", "/api/v1/pools/app")
        assert status == 200
        return {s["server"]: s["weight"] for s in body["servers"]}

    assert weights() == {"a": 2, "b": 1, "c": 1}  # the runtime change still wins

    missing = ctl(port, "reload", "--discard-runtime", "nosuch")
    assert missing.returncode == 1 and "no pool named 'nosuch'" in missing.stderr
    done = ctl(port, "reload", "--discard-runtime", "app")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reloaded (runtime changes discarded: app)"
    lb.wait_for(r"runtime changes to pool app discarded")
    assert weights() == {"a": 5, "b": 1}  # the file alone: a at 5, the added c gone
    state = json.loads((tmp_path / "steelyard.toml.state.json").read_text())
    assert "app" not in state["pools"]


def test_ctl_json_goes_before_or_after_the_command_and_status_shows_listeners(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    before, after = ctl(port, "--json", "servers", "app"), ctl(port, "servers", "app", "--json")
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    assert json.loads(before.stdout)["servers"][0]["server"] == json.loads(after.stdout)["servers"][0]["server"] == "a"
    status = ctl(port, "status")
    assert status.returncode == 0 and "listeners" in status.stdout and f"127.0.0.1:{lb.port}" in status.stdout
    assert [x["name"] for x in json.loads(ctl(port, "status", "--json").stdout)["listeners"]] == ["web"]


def test_serve_prints_its_pid_first_and_the_version_is_asked_for(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    assert re.match(r"steelyard: pid (\d+) ", lb.lines[0]).group(1) == str(lb.pid())
    out = subprocess.run([*STEELYARD, "--version"], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0 and re.fullmatch(r"steelyard \d+\.\d+\.\d+\n", out.stdout)
