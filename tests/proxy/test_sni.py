"""steelyard.proxy.sni: the server name from a real ClientHello, whole, cut, or split in records."""

from __future__ import annotations

import ssl

import pytest

from steelyard.config import ConfigError, parse_config
from steelyard.proxy.sni import MORE, client_hello_name, route


def client_hello(name: str | None) -> bytes:
    """The first flight of Python's TLS client (no socket: memory BIOs)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_name_comes_out_lower_cased_and_only_once_the_hello_is_whole():
    hello = client_hello("Api.Example.TEST")
    assert client_hello_name(hello) == "api.example.test"
    assert all(client_hello_name(hello[:n]) is MORE for n in (0, 3, 5, 40, len(hello) - 1))


def test_no_sni_and_not_tls_are_none():
    assert client_hello_name(client_hello(None)) is None
    assert client_hello_name(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") is None
    assert client_hello_name(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00") is None  # a handshake, not a ClientHello


def test_a_hello_split_over_two_records_is_joined():
    hello = client_hello("split.test")
    body = hello[5:]
    cut = 30
    first = b"\x16\x03\x01" + cut.to_bytes(2, "big") + body[:cut]
    second = b"\x16\x03\x01" + (len(body) - cut).to_bytes(2, "big") + body[cut:]
    assert client_hello_name(first) is MORE
    assert client_hello_name(first + second) == "split.test"


def test_a_corrupted_hello_never_raises():
    hello = client_hello("x.test")
    for i in range(9, len(hello), 7):  # (each call raising would fail the test)
        client_hello_name(hello[:i] + bytes([hello[i] ^ 0xFF]) + hello[i + 1 :])


def test_route_exact_then_one_label_wildcard_then_default():
    routes = [("a.test", "A"), ("*.b.test", "B")]
    assert route("a.test", routes, "D") == "A"
    assert route("x.b.test", routes, "D") == "B"
    assert route("y.x.b.test", routes, "D") == "D"  # a wildcard covers one label
    assert route("b.test", routes, "D") == "D"
    assert route(None, routes, "D") == "D"


def test_sni_routes_are_for_tcp_listeners_and_name_existing_pools():
    base = """
        [[listener]]
        name = "edge"
        mode = "%s"
        bind = "127.0.0.1:0"
        pool = "a"
        sni = [ { name = "%s", pool = "%s" } ]
        [[pool]]
        name = "a"
        servers = [ { address = "127.0.0.1:9" } ]
    """
    assert parse_config(base % ("tcp", "*.a.test", "a")).listeners[0].sni[0].name == "*.a.test"
    for mode, name, pool, fragment in (
        ("http", "a.test", "a", "only for mode 'tcp'"),
        ("tcp", "a.test", "nope", 'no pool named "nope"'),
        ("tcp", "bad name!", "a", "expected a host name"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(base % (mode, name, pool))
        assert fragment in str(info.value)
