"""``steelyard check``'s summary names what the file turns on: TLS, stickiness, the admin API,
DNS zones, the cluster and the floating address (steelyard.config.summary)."""

from __future__ import annotations

from pathlib import Path

from steelyard.config import parse_config
from steelyard.config.summary import describe

from .test_model import toml


def test_summary_names_tls_sticky_admin_dns_cluster_and_keepalived(tmp_path: Path) -> None:
    for name in ("site.pem", "site.key", "api.pem", "api.key"):
        (tmp_path / name).write_text("placeholder: only existence is checked when the config is read")
    text = toml(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:8443"
        pool = "app"
        access_log = "-"
        max_connections = 1000
        rate_limit = {{ rate = 50, burst = 100 }}

        [listener.tls]
        cert = "{tmp_path}/site.pem"
        key = "{tmp_path}/site.key"

        [[listener.tls.certificate]]
        cert = "{tmp_path}/api.pem"
        key = "{tmp_path}/api.key"
        names = ["api.example.test"]

        [[listener]]
        name = "plain"
        bind = "127.0.0.1:8080"
        pool = "app"
        redirect_https = true

        [[pool]]
        name = "app"
        servers = [ {{ address = "127.0.0.1:9001" }} ]

        [pool.sticky]
        mode = "cookie"
        secret = "0123456789abcdef0123"
        drain_grace = "30s"

        [admin]
        bind = "127.0.0.1:9901"

        [[dns]]
        zone = "example.test."

        [[dns.record]]
        name = "app"
        pool = "app"
        policy = "round_robin"

        [cluster]
        redis = "redis://:hunter2-password@127.0.0.1:6379/0"
        node = "lb1"

        [keepalived]
        interface = "eth0"
        virtual_ipaddress = "10.0.0.100/24"
    """)
    out = describe(parse_config(text))
    assert f"TLS 1.2+ with 2 certificate(s): {tmp_path}/site.pem; {tmp_path}/api.pem for api.example.test" in out
    assert "redirects every request to https://" in out
    assert "limits: 1000 connections, 50 requests/s per client (burst 100)" in out
    assert "access log: standard output" in out
    assert "sticky by cookie SYID (fixed secret), draining servers keep clients 30s" in out
    assert "http://127.0.0.1:9901/  API, /metrics and dashboard; no token (loopback only)" in out
    assert "zone example.test. on 127.0.0.1:5353 (UDP and TCP)" in out
    assert "app  → pool app, round_robin" in out
    assert "node lb1 on redis://:***@127.0.0.1:6379/0" in out and "hunter2" not in out
    assert "10.0.0.100/24 on eth0" in out


def test_summary_of_a_plain_config_has_no_control_sections() -> None:
    out = describe(
        parse_config(
            '[[listener]]\nname = "w"\nbind = "127.0.0.1:0"\npool = "p"\n\n'
            '[[pool]]\nname = "p"\nservers = [ { address = "127.0.0.1:9001" } ]\n'
        )
    )
    for absent in ("admin", "dns", "cluster", "keepalived", "TLS", "sticky"):
        assert absent not in out
