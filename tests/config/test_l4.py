"""Configuration of tcp and udp (L4) listeners: keys per mode, defaults, and errors by key path."""

from __future__ import annotations

import textwrap

import pytest

from steelyard.cli import describe
from steelyard.config import ConfigError, parse_config


def l4(listener: str, pool: str = "") -> str:
    head = '[[listener]]\nname = "edge"\nbind = "127.0.0.1:7000"\npool = "app"\n'
    return (
        head + textwrap.dedent(listener) + '\n\n[[pool]]\nname = "app"\n'
        'servers = [ { address = "127.0.0.1:9001" } ]\n' + textwrap.dedent(pool) + "\n"
    )


def errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "l4.toml")
    return info.value.errors


def test_tcp_listener_defaults() -> None:
    (ls,) = parse_config(l4('mode = "tcp"')).listeners
    assert (ls.mode, ls.idle_timeout, ls.send_proxy, ls.splice) == ("tcp", 3600.0, None, True)
    (ls,) = parse_config(l4('mode = "tcp"\nsplice = false')).listeners
    assert ls.splice is False
    assert errors(l4('mode = "udp"\nsplice = false')) == [
        ('listener "edge" → splice', "only for mode 'tcp' listeners; this one is mode 'udp'")
    ]


def test_udp_listener_defaults_and_keys() -> None:
    (ls,) = parse_config(l4('mode = "udp"')).listeners
    assert (ls.mode, ls.idle_timeout, ls.per_datagram, ls.max_flows) == ("udp", 30.0, False, 65536)
    (ls,) = parse_config(l4('mode = "udp"\nidle_timeout = "5s"\nper_datagram = true\nmax_flows = 10')).listeners
    assert (ls.idle_timeout, ls.per_datagram, ls.max_flows) == (5.0, True, 10)


def test_http_listener_has_no_idle_timeout() -> None:
    (ls,) = parse_config(l4("")).listeners
    assert ls.mode == "http" and ls.idle_timeout is None


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy(version: str) -> None:
    (ls,) = parse_config(l4(f'mode = "tcp"\nsend_proxy = "{version}"')).listeners
    assert ls.send_proxy == version


def test_http_keys_are_refused_on_l4_listeners() -> None:
    text = l4('mode = "tcp"\nkeepalive_timeout = "5s"\n[[listener.route]]\npath_prefix = "/api/"\npool = "app"')
    assert errors(text) == [
        ('listener "edge" → route', "only for mode 'http' listeners; this one is mode 'tcp'"),
        ('listener "edge" → keepalive_timeout', "only for mode 'http' listeners; this one is mode 'tcp'"),
    ]
    assert errors(l4('mode = "udp"\nrequest_timeout = "5s"\nsend_proxy = "v1"')) == [
        ('listener "edge" → request_timeout', "only for mode 'http' listeners; this one is mode 'udp'"),
        ('listener "edge" → send_proxy', "only for mode 'tcp' listeners; this one is mode 'udp'"),
    ]


def test_l4_keys_are_refused_on_http_listeners() -> None:
    assert errors(l4('idle_timeout = "5s"\nper_datagram = true')) == [
        ('listener "edge" → idle_timeout', "only for mode 'tcp' or 'udp' listeners; this one is mode 'http'"),
        ('listener "edge" → per_datagram', "only for mode 'udp' listeners; this one is mode 'http'"),
    ]


def test_mode_errors_come_with_field_errors() -> None:
    errs = errors(l4('mode = "tcp"\nsend_proxy = "v3"\nidle_timeout = "soon"\nmax_flows = 3'))
    paths = [p for p, _ in errs]
    assert paths == ['listener "edge" → idle_timeout', 'listener "edge" → send_proxy', 'listener "edge" → max_flows']
    assert "duration" in errs[0][1] and "'v1' or 'v2'" in errs[1][1] and "mode 'udp'" in errs[2][1]


def test_l4_listener_cannot_hash_on_what_only_http_has() -> None:
    text = l4('mode = "tcp"', 'algorithm = "consistent_hash"\nhash_on = "header:X-User"')
    assert errors(text) == [
        (
            'listener "edge" → pool',
            'pool "app" hashes on header:X-User, which a tcp listener '
            'cannot see; use hash_on = "client_ip" (or another pool)',
        )
    ]
    # round robin never reads hash_on, and client_ip is fine at L4
    parse_config(l4('mode = "tcp"', 'hash_on = "header:X-User"'))
    parse_config(l4('mode = "udp"', 'algorithm = "consistent_hash"'))


def test_tcp_and_udp_may_share_a_port_but_not_two_udp() -> None:
    two = l4('mode = "udp"').replace(
        "[[pool]]", '[[listener]]\nname = "{n}"\nbind = "127.0.0.1:7000"\npool = "app"\nmode = "{m}"\n\n[[pool]]'
    )
    parse_config(two.replace("{n}", "dns-tcp").replace("{m}", "tcp"))
    assert errors(two.replace("{n}", "dns2").replace("{m}", "udp")) == [
        ('listener "dns2" → bind', 'duplicate bind "127.0.0.1:7000" (also listener #1)'),
    ]


def test_describe_l4_listeners() -> None:
    text = l4('mode = "tcp"\nsend_proxy = "v2"').replace(
        "[[pool]]",
        '[[listener]]\nname = "dns"\nbind = "127.0.0.1:53"\npool = "app"\nmode = "udp"\n'
        "per_datagram = true\n\n[[pool]]",
    )
    out = describe(parse_config(text))
    assert "edge  tcp on 127.0.0.1:7000  → pool app  (idle 1h, PROXY protocol v2)" in out
    assert "dns  udp on 127.0.0.1:53  → pool app  (balanced per datagram, flows idle 30s, at most 65536 flows)" in out
