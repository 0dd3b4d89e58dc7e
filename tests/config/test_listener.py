"""Listener hardening keys: defaults, sizes, per-mode checks, TLS files, errors naming the key path."""

from __future__ import annotations

import pytest

from steelyard.config import ConfigError, parse_config
from steelyard.config.listener import parse_size

BASE = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"
mode = "{mode}"
{extra}

[[pool]]
name = "app"
servers = [ {{ address = "127.0.0.1:9" }} ]
"""


def cfg(extra: str = "", mode: str = "http"):
    return parse_config(BASE.format(extra=extra, mode=mode))


def errors(extra: str, mode: str = "http") -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        cfg(extra, mode)
    return exc.value.errors


def test_defaults():
    lc = cfg().listeners[0]
    assert (lc.max_connections, lc.max_connections_per_client, lc.max_body_size) == (None, None, None)
    assert (lc.max_uri_length, lc.max_header_count, lc.rate_limit, lc.tls, lc.redirect_https) == (
        8192,
        100,
        None,
        None,
        False,
    )


def test_sizes_and_rate_limit():
    lc = cfg('max_body_size = "10MB"\nmin_body_rate = "1k"\nrate_limit = { rate = 5 }').listeners[0]
    assert lc.max_body_size == 10_000_000 and lc.min_body_rate == 1024
    assert lc.rate_limit.rate == 5.0 and lc.rate_limit.bucket_size == 5
    assert parse_size(4096) == 4096 and parse_size("64KiB") == 65536
    for bad in ("0", "ten", -1, True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_errors_name_the_key_path():
    assert errors('max_body_size = "lots"')[0][0] == 'listener "web" → max_body_size'
    assert errors("rate_limit = { rate = 0 }")[0][0] == 'listener "web" → rate_limit → rate'
    assert any("did you mean" in msg for _, msg in errors("rate_limit = { rat = 1 }"))
    path, msg = errors('tls = { cert = "/nonexistent.pem", key = "/nonexistent.key" }')[0]
    assert path.startswith('listener "web" → tls') and "no such file" in msg


def test_http_only_keys_are_refused_on_tcp_listeners():
    ((path, msg),) = errors("max_body_size = 10", mode="tcp")
    assert path == 'listener "web" → max_body_size' and "mode 'http'" in msg
    assert cfg("max_connections = 10\nmax_connections_per_client = 2", mode="tcp").listeners[0].max_connections == 10


def test_tls_needs_a_certificate(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    assert "cert and key go together" in errors(f'tls = {{ cert = "{cert}" }}')[0][1]
    assert cfg(f'tls = {{ cert = "{cert}", key = "{key}" }}').listeners[0].tls.min_version == "1.2"
