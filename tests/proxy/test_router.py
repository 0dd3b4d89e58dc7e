"""steelyard.proxy.http.router: host normalisation, route conditions, first-match order, build_router."""

import pytest

from steelyard.config import parse_config
from steelyard.proxy.http.router import Route, Router, build_router, normalize_host


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        (b"example.test", b"example.test"),
        (b"Example.TEST:8080", b"example.test"),
        (b"example.test.", b"example.test"),
        (b"Example.Test.:443", b"example.test"),
        (b"[::1]:80", b"[::1]"),
        (b"[FE80::1]", b"[fe80::1]"),
        (b"[FE80::1]:8080", b"[fe80::1]"),
        (b"10.0.0.1:80", b"10.0.0.1"),
        (b"", b""),
    ],
)
def test_normalize_host(raw, host):
    assert normalize_host(raw) == host


def matches(route, host=b"example.test", path=b"/", headers=()):
    return route.matches(normalize_host(host), path, list(headers))


def test_exact_host_is_case_insensitive_and_ignores_the_port():
    r = Route("t", host="Example.Test")
    assert matches(r, b"EXAMPLE.test:8080")
    assert not matches(r, b"www.example.test")
    assert not matches(r, b"example.tester")


def test_wildcard_needs_a_label_before_the_suffix():
    r = Route("t", host="*.example.test")
    assert matches(r, b"a.example.test")
    assert matches(r, b"A.B.Example.Test:81")
    assert not matches(r, b"example.test")  # the apex
    assert not matches(r, b".example.test")  # an empty label
    assert not matches(r, b"aexample.test")  # not a label boundary


def test_path_prefix_is_a_byte_prefix_of_the_target():
    r = Route("t", path_prefix="/api")
    assert matches(r, path=b"/api")
    assert matches(r, path=b"/api/v1?x=1")
    assert matches(r, path=b"/apix")  # byte-wise, not per segment
    assert not matches(r, path=b"/API")
    assert not matches(r, path=b"/v1/api")


def test_header_name_is_case_insensitive_and_value_exact():
    r = Route("t", header=("X-Tenant", "blue"))
    assert matches(r, headers=[(b"x-tenant", b"blue")])
    assert matches(r, headers=[(b"X-TENANT", b"blue")])
    assert matches(r, headers=[(b"X-Tenant", b"red"), (b"X-Tenant", b"blue")])  # some header of that name
    assert not matches(r, headers=[(b"X-Tenant", b"Blue")])
    assert not matches(r, headers=[(b"X-Tenant", b"blue ")])
    assert not matches(r, headers=[(b"X-Other", b"blue")])
    assert not matches(r, headers=[])


def test_every_given_condition_must_match():
    r = Route("t", host="example.test", path_prefix="/api", header=("X-Beta", "1"))
    ok = [(b"X-Beta", b"1")]
    assert matches(r, b"example.test", b"/api/x", ok)
    assert not matches(r, b"other.test", b"/api/x", ok)
    assert not matches(r, b"example.test", b"/web", ok)
    assert not matches(r, b"example.test", b"/api/x", [])


def test_router_takes_the_first_match_in_order_else_the_default():
    router = Router(
        "default",
        [Route("api", path_prefix="/api"), Route("host", host="example.test"), Route("late", path_prefix="/")],
    )
    assert router.route(b"example.test", b"/api/x", []) == "api"  # both first and second match
    assert router.route(b"Example.Test:80", b"/web", []) == "host"
    assert router.route(b"other.test", b"/web", []) == "late"
    assert Router("default", [Route("api", path_prefix="/api")]).route(b"x", b"/web", []) == "default"


def test_router_without_routes_answers_the_default():
    router = Router("default")
    assert router.routes == ()
    assert router.route(b"anything", b"/api", [(b"X", b"y")]) == "default"


CONFIG = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "main"

[[listener.route]]
host = "API.Example.Test."
pool = "api"

[[listener.route]]
host = "*.static.test"
path_prefix = "/img"
pool = "static"

[[listener.route]]
header = { name = "X-Canary", value = "yes" }
pool = "canary"

[[pool]]
name = "main"
servers = [{ address = "127.0.0.1:9001" }]
[[pool]]
name = "api"
servers = [{ address = "127.0.0.1:9002" }]
[[pool]]
name = "static"
servers = [{ address = "127.0.0.1:9003" }]
[[pool]]
name = "canary"
servers = [{ address = "127.0.0.1:9004" }]
"""


def test_build_router_from_config():
    listener = parse_config(CONFIG).listeners[0]
    targets = {name: f"<{name}>" for name in ("main", "api", "static", "canary")}
    router = build_router(listener, targets)
    assert router.default == "<main>"
    assert [r.target for r in router.routes] == ["<api>", "<static>", "<canary>"]
    assert router.route(b"api.example.test:8443", b"/", []) == "<api>"
    assert router.route(b"api.example.test.", b"/", []) == "<api>"
    assert router.route(b"cdn.static.test", b"/img/a.png", []) == "<static>"
    assert router.route(b"cdn.static.test", b"/css/a.css", []) == "<main>"
    assert router.route(b"static.test", b"/img/a.png", []) == "<main>"
    assert router.route(b"www.test", b"/", [(b"x-canary", b"yes")]) == "<canary>"
    assert router.route(b"api.example.test", b"/", [(b"X-Canary", b"yes")]) == "<api>"  # first match wins


def test_build_router_without_routes():
    cfg = parse_config(
        """
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "main"
        [[pool]]
        name = "main"
        servers = [{ address = "127.0.0.1:9001" }]
        """
    )
    router = build_router(cfg.listeners[0], {"main": "<main>"})
    assert router.routes == ()
    assert router.route(b"api.example.test", b"/api", []) == "<main>"
