"""The metric families on /metrics (HAProxy's exporter names with ``steelyard_``) and the Grafana
dashboard in examples/: every expression in it names a metric a running balancer exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .conftest import pool_config, servers_toml
from .test_admin import admin_config, admin_port, api
from .test_reload_counters import send

GRAFANA = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"
NAME = re.compile(r"\b((?:steelyard|process)_[A-Za-z0-9_]+)")


def exposed(port: int) -> tuple[set[str], dict]:
    status, raw = api(port, "GET", "/metrics", token=None)
    assert status == 200
    families = list(text_string_to_metric_families(raw.decode()))
    return {s.name for f in families for s in f.samples}, {f.name: f for f in families}


def expressions(node) -> list[str]:
    """Every PromQL text in a Grafana dashboard: targets' ``expr`` and variables' queries."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                out.append(value)
            else:
                out += expressions(value)
    elif isinstance(node, list):
        for item in node:
            out += expressions(item)
    return out


def test_every_grafana_expression_names_an_exposed_metric(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    send(lb.port, 5)
    send(lb.port, 2, "/status/503")
    assert api(port, "PATCH", "/api/v1/pools/app/servers/a", {"state": "maint"})[0] == 200
    send(lb.port, 1)  # no server: steelyard answers 503 itself
    assert api(port, "POST", "/api/v1/reload")[0] == 200  # (the reload families appear after one)
    names, _ = exposed(port)
    dashboard = json.loads(GRAFANA.read_text())
    exprs = expressions(dashboard)
    used = {m for e in exprs for m in NAME.findall(e)}
    assert len(exprs) >= 30 and len(used) >= 25, (len(exprs), sorted(used))
    assert sorted(used - names) == []
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)


def test_metrics_count_per_listener_pool_and_server_by_code_class(backends, balancer):
    (a,) = backends(["a"])
    lb = balancer(admin_config(servers_toml([a])))
    port = admin_port(lb)
    send(lb.port, 6)
    send(lb.port, 3, "/status/404")
    send(lb.port, 2, "/status/503")
    _, families = exposed(port)

    def values(family: str, **want) -> dict[str, float]:
        return {
            s.labels.get("code", s.name): s.value
            for s in families[family].samples
            if s.name.endswith(("_total", "")) and all(s.labels.get(k) == v for k, v in want.items())
        }

    codes = {"1xx": 0, "2xx": 6, "3xx": 0, "4xx": 3, "5xx": 2}
    assert values("steelyard_server_http_responses", pool="app", server="a") == codes
    assert values("steelyard_backend_http_responses", pool="app") == codes
    assert values("steelyard_frontend_http_responses", listener="web") == {**codes, "other": 0}
    assert families["steelyard_frontend_http_requests"].samples[0].value == 11
    assert families["steelyard_frontend_connections"].samples[0].value == 3  # (send opens one each time)
    assert families["steelyard_frontend_bytes_in"].samples[0].value > 11 * len("GET / HTTP/1.1\r\n")
    assert families["steelyard_frontend_bytes_out"].samples[0].value > 11 * len("HTTP/1.1 200 OK\r\n")
    states = {s.labels["state"]: s.value for s in families["steelyard_server_status"].samples}
    assert states == {"up": 1, "down": 0, "ejected": 0, "drain": 0, "maint": 0}
    assert families["steelyard_server_weight"].samples[0].value == 1
    assert families["steelyard_backend_active_servers"].samples[0].value == 1
    info = families["steelyard_build_info"].samples[0]
    assert info.value == 1 and re.fullmatch(r"\d+\.\d+\.\d+", info.labels["version"])
    assert families["steelyard_last_reload_successful"].samples[0].value == 1  # (none yet: nothing failed)
    assert families["process_resident_memory_bytes"].samples[0].value > 1_000_000


def test_with_workers_listener_counters_and_history_are_the_workers_sums(backends, balancer):
    from .l4util import wait_until
    from .test_workers import with_workers

    a, b = backends(["a", "b"])
    lb = balancer(with_workers(pool_config(servers_toml([a, b]))))
    port = admin_port(lb)
    for _ in range(8):  # connections of their own: both workers serve some
        send(lb.port, 3)
    _, families = exposed(port)
    assert families["steelyard_frontend_http_requests"].samples[0].value == 24
    assert families["steelyard_frontend_connections"].samples[0].value == 8
    responses = {s.labels["code"]: s.value for s in families["steelyard_frontend_http_responses"].samples}
    assert responses["2xx"] == 24 and sum(responses.values()) == 24
    assert families["steelyard_workers"].samples[0].value == 2

    def served_in_history() -> float:
        status, body = api(port, "GET", "/api/v1/history", token=None)
        return sum(s[1] * body["interval_s"] for s in body["listeners"].get("web", []))

    assert wait_until(lambda: served_in_history() > 0)  # (the control process sampled the workers' sums)
