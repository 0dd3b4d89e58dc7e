"""Tests for steelyard.config: TOML -> frozen model, and errors that name file + key path."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest
from pydantic import ValidationError

from steelyard.cli import describe
from steelyard.config import (
    Config,
    ConfigError,
    format_duration,
    load_config,
    parse_config,
    split_host_port,
)
from steelyard.core.balancing import Balancer, BalancerOptions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def toml(text: str) -> str:
    return textwrap.dedent(text)


MINIMAL = toml("""
    [[listener]]
    name = "web"
    bind = "127.0.0.1:0"
    pool = "app"

    [[pool]]
    name = "app"
    servers = [ { address = "127.0.0.1:9001" } ]
""")


def with_route(*bodies: str) -> str:
    """MINIMAL with one ``[[listener.route]]`` per body; a body without ``pool`` routes to "app"."""
    routes = "".join(
        f"[[listener.route]]\n{body}\n" + ("" if "pool =" in body else 'pool = "app"\n') + "\n" for body in bodies
    )
    return MINIMAL.replace("[[pool]]", routes + "[[pool]]", 1)


def errors_of(text: str, tmp_path: Path, name: str = "bad.toml") -> tuple[str, list[tuple[str, str]]]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    for line in str(err).splitlines():
        assert line.startswith(f"{path}: ")
    return str(err), err.errors


# --- valid configurations ---------------------------------------------------------


def test_example_loads_with_values_and_defaults() -> None:
    cfg = load_config(EXAMPLES / "basic.toml")
    assert cfg.source == str(EXAMPLES / "basic.toml")
    assert cfg.workers == 1
    assert cfg.shutdown_grace == 10.0

    (web,) = cfg.listeners
    assert (web.name, web.mode, web.pool) == ("web", "http", "app")
    assert (web.host, web.port) == ("127.0.0.1", 8080)
    assert web.keepalive_timeout == 60.0 and web.request_timeout == 30.0
    (route,) = web.routes
    assert route.host == "api.example.test" and route.path_prefix == "/api/"
    assert (route.header.name, route.header.value) == ("X-Canary", "1")
    assert route.pool == "api"

    app = cfg.pool("app")
    assert app.algorithm == "weighted_round_robin" and app.hash_on == "client_ip"
    assert [(s.name, s.host, s.port, s.weight) for s in app.servers] == [
        ("127.0.0.1:9001", "127.0.0.1", 9001, 1),
        ("b", "127.0.0.1", 9002, 3),
    ]
    assert (app.connect_timeout, app.timeout, app.max_idle, app.idle_timeout) == (2.0, 30.0, 64, 60.0)

    api = cfg.pool("api")
    assert api.balancer_options() == BalancerOptions(hash_on="client_ip", hash_balance_factor=1.25, ewma_decay=10.0)
    with pytest.raises(KeyError):
        cfg.pool("nope")


def test_minimal_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.source == "<string>"
    assert (cfg.workers, cfg.shutdown_grace) == (1, 10.0)
    web = cfg.listeners[0]
    assert (web.mode, web.routes, web.port, web.keepalive_timeout, web.request_timeout) == ("http", (), 0, 60.0, 30.0)
    app = cfg.pools[0]
    assert (app.algorithm, app.hash_on, app.hash_balance_factor) == ("round_robin", "client_ip", None)
    assert (app.connect_timeout, app.timeout, app.max_idle, app.idle_timeout, app.ewma_decay) == (
        2.0,
        30.0,
        64,
        60.0,
        10.0,
    )
    assert app.servers[0].weight == 1 and app.servers[0].name == "127.0.0.1:9001"


@pytest.mark.parametrize("text, seconds", [("150ms", 0.15), ("2s", 2.0), ("1.5s", 1.5), ("2m", 120.0), (" 5s ", 5.0)])
def test_durations(text: str, seconds: float) -> None:
    cfg = parse_config(MINIMAL.replace('name = "app"\n', f'name = "app"\ntimeout = "{text}"\n'))
    assert cfg.pools[0].timeout == pytest.approx(seconds)


def test_format_duration_round_trips() -> None:
    assert [format_duration(s) for s in (0.15, 2.0, 1.5, 120.0, 90.0)] == ["150ms", "2s", "1.5s", "2m", "90s"]


def test_ipv6_bind_and_server() -> None:
    cfg = parse_config(MINIMAL.replace("127.0.0.1:0", "[::1]:8443").replace("127.0.0.1:9001", "[fd00::5]:80"))
    assert (cfg.listeners[0].host, cfg.listeners[0].port) == ("::1", 8443)
    server = cfg.pools[0].servers[0]
    assert (server.host, server.port, server.name) == ("fd00::5", 80, "[fd00::5]:80")


def test_split_host_port() -> None:
    assert split_host_port("example.test:80") == ("example.test", 80)
    assert split_host_port("[::]:0", allow_port_zero=True) == ("::", 0)
    for bad in ("127.0.0.1", "::1:80", "[::1]80", "host:0", "host:65536", "host:http", ":80"):
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_custom_algorithm_and_hash_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    user_module = types.ModuleType("my_balancers")
    user_module.Mine = type("Mine", (Balancer,), {"pick": lambda self, ctx, exclude=(): None})
    monkeypatch.setitem(sys.modules, "my_balancers", user_module)
    text = MINIMAL.replace(
        'name = "app"\n', 'name = "app"\nalgorithm = "my_balancers:Mine"\nhash_on = "header:X-User"\n'
    )
    pool = parse_config(text).pools[0]
    assert pool.algorithm == "my_balancers:Mine"
    assert pool.balancer_options().hash_on == "header:X-User"
    for ok in ("uri", "cookie:sid", "client_ip"):
        parse_config(text.replace("header:X-User", ok))


def test_wildcard_route_host_is_normalized() -> None:
    cfg = parse_config(with_route('host = "*.Example.TEST."'))
    assert cfg.listeners[0].routes[0].host == "*.example.test"


def test_parse_config_accepts_a_dict() -> None:
    cfg = parse_config(
        {
            "listener": [{"name": "l", "bind": "127.0.0.1:0", "pool": "p"}],
            "pool": [{"name": "p", "servers": [{"address": "127.0.0.1:1"}]}],
        },
        source="api",
    )
    assert cfg.source == "api" and cfg.pool("p").servers[0].port == 1


def test_models_are_frozen() -> None:
    cfg = load_config(EXAMPLES / "basic.toml")
    with pytest.raises(ValidationError):
        cfg.workers = 4
    with pytest.raises(ValidationError):
        cfg.pools[0].servers[0].weight = 9
    with pytest.raises(ValidationError):
        cfg.listeners[0].routes[0].header.value = "2"
    assert isinstance(cfg.pools, tuple) and isinstance(cfg.listeners[0].routes, tuple)


def test_describe_summarises() -> None:
    text = describe(load_config(EXAMPLES / "basic.toml"))
    for needle in (
        "web",
        "127.0.0.1:8080",
        "http",
        "→ pool app",
        "host api.example.test",
        "path /api/",
        "header X-Canary: 1",
        "→ pool api",
        "weighted_round_robin",
        "consistent_hash",
        "hash on client_ip",
        "b 127.0.0.1:9002  weight 3",
        "127.0.0.1:9001  weight 1",
    ):
        assert needle in text
    assert len(text.splitlines()) < 25
    assert "hash on" not in text.split("pools")[1].splitlines()[1]  # weighted_round_robin does not hash


# --- errors name the file and the key path ----------------------------------------


def test_unknown_algorithm(tmp_path: Path) -> None:
    text, errors = errors_of(MINIMAL.replace('name = "app"\n', 'name = "app"\nalgorithm = "fastest"\n'), tmp_path)
    assert errors == [('pool "app" → algorithm', errors[0][1])]
    assert "unknown algorithm 'fastest'; choose one of round_robin" in text
    assert f'{tmp_path / "bad.toml"}: pool "app" → algorithm: unknown algorithm' in text


@pytest.mark.parametrize("value", ["30", '"30"', '"30 sec"', '"0s"', '"-1s"', '"1w"'])
def test_bad_duration(tmp_path: Path, value: str) -> None:
    text, errors = errors_of(MINIMAL.replace('name = "app"\n', f'name = "app"\ntimeout = {value}\n'), tmp_path)
    ((path, msg),) = errors
    assert path == 'pool "app" → timeout'
    if value == "30":
        assert msg == 'expected a duration with a unit (ms, s, m, h, d), e.g. "2s"; got 30'


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    _, errors = errors_of(MINIMAL.replace("bind =", 'keepalive = "5s"\nbind ='), tmp_path)
    assert errors == [('listener "web" → keepalive', "unknown key; did you mean 'keepalive_timeout'?")]
    _, errors = errors_of("source = 'x'\n" + MINIMAL, tmp_path)  # source is set by the loader, not the user
    assert errors[0][0] == "source" and errors[0][1].startswith("unknown key")


def test_route_to_missing_pool(tmp_path: Path) -> None:
    text = with_route('path_prefix = "/a/"', 'path_prefix = "/b/"\npool = "nowhere"')
    _, errors = errors_of(text, tmp_path)
    assert errors == [('listener "web" → route #2 → pool', 'no pool named "nowhere"; pools are: app')]


def test_listener_default_pool_missing(tmp_path: Path) -> None:
    _, errors = errors_of(MINIMAL.replace('pool = "app"', 'pool = "ap"'), tmp_path)
    assert errors == [('listener "web" → pool', 'no pool named "ap"; pools are: app')]


def test_duplicate_pool_names(tmp_path: Path) -> None:
    text = MINIMAL + toml("""
        [[pool]]
        name = "app"
        servers = [ { address = "127.0.0.1:9002" } ]
    """)
    _, errors = errors_of(text, tmp_path)
    assert errors == [('pool "app" → name', 'duplicate name "app" (also pool #1)')]


def test_duplicate_listeners_and_binds(tmp_path: Path) -> None:
    listener, pool = MINIMAL.split("[[pool]]")
    text = (
        listener.replace(":0", ":8080")
        + listener.replace(":0", ":8080").replace('"web"', '"web2"')
        + listener
        + "[[pool]]"
        + pool
    )
    _, errors = errors_of(text, tmp_path)
    assert errors == [
        ('listener "web" → name', 'duplicate name "web" (also listener #1)'),
        ('listener "web2" → bind', 'duplicate bind "127.0.0.1:8080" (also listener #1)'),
    ]
    # several listeners may share port 0: each gets its own ephemeral port
    parse_config(listener + listener.replace('"web"', '"web2"') + "[[pool]]" + pool)


def test_duplicate_servers_in_a_pool(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '{ address = "127.0.0.1:9001" }', '{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9001", name = "x" }'
    )
    _, errors = errors_of(text, tmp_path)
    assert errors == [
        ('pool "app" → servers "x" → address', 'duplicate address "127.0.0.1:9001" (also servers #1)'),
    ]


def test_unknown_mode(tmp_path: Path) -> None:
    _, errors = errors_of(MINIMAL.replace("bind =", 'mode = "sctp"\nbind ='), tmp_path)
    assert errors == [('listener "web" → mode', 'unknown mode "sctp"; choose one of http, tcp, udp')]


def test_several_workers_are_accepted_up_to_32(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("workers = 4\n" + MINIMAL)
    assert load_config(path).workers == 4
    _, errors = errors_of("workers = 33\n" + MINIMAL, tmp_path)
    assert errors == [("workers", "input should be less than or equal to 32; got 33")]


def test_several_workers_refuse_what_one_process_must_keep(tmp_path: Path) -> None:
    source = '[pool.sticky]\nmode = "source"\n'
    _, errors = errors_of("workers = 2\n" + MINIMAL + source, tmp_path)
    assert errors == [
        (
            'pool "app" → sticky → mode',
            'mode "source" keeps its stick table in one process; with workers = 2 use '
            'mode = "cookie" (every worker reads the cookie) or workers = 1',
        ),
    ]


def test_several_errors_at_once(tmp_path: Path) -> None:
    text = toml("""
        workers = 0

        [[listener]]
        name = "web"
        bind = "localhost"
        mode = "quic"
        pool = "missing"

        [[listener.route]]
        pool = "app"

        [[pool]]
        name = "app"
        algorithm = "fastest"
        hash_on = "cookie"
        hash_balance_factor = 0.5
        servers = [ { address = "127.0.0.1:9001", weight = 5000 }, { address = "10.0.0.1" } ]
        connect_timeout = 2
    """)
    _, errors = errors_of(text, tmp_path)
    paths = [p for p, _ in errors]
    assert paths == [
        "workers",
        'listener "web" → bind',
        'listener "web" → mode',
        'listener "web" → route #1',
        'pool "app" → algorithm',
        'pool "app" → hash_on',
        'pool "app" → hash_balance_factor',
        'pool "app" → servers #1 → weight',
        'pool "app" → servers #2 → address',
        'pool "app" → connect_timeout',
        'listener "web" → pool',
    ]
    messages = dict(errors)
    assert messages['listener "web" → route #1'] == "a route needs at least one of host, path_prefix, header"
    assert messages['pool "app" → servers #1 → weight'].endswith("; got 5000")


@pytest.mark.parametrize(
    "snippet, path, fragment",
    [
        ('path_prefix = "api"', 'listener "web" → route #1 → path_prefix', 'starting with "/"'),
        ('host = "a.*.test"', 'listener "web" → route #1 → host', "*.suffix"),
        ('header = "X-Canary"', 'listener "web" → route #1 → header', "expected a table"),
        ('header = { name = "bad name", value = "1" }', 'listener "web" → route #1 → header → name', "header name"),
        ('header = { name = "X-A" }', 'listener "web" → route #1 → header → value', "missing required key"),
    ],
)
def test_route_errors(tmp_path: Path, snippet: str, path: str, fragment: str) -> None:
    _, errors = errors_of(with_route(snippet), tmp_path)
    assert len(errors) == 1 and errors[0][0] == path and fragment in errors[0][1]


def test_structure_errors(tmp_path: Path) -> None:
    _, errors = errors_of('workers = "2"\n[[pool]]\nname = "app"\nservers = []\n', tmp_path)
    assert errors == [
        ("workers", 'input should be a valid integer; got "2"'),
        ("listener", "missing required key"),
        ('pool "app" → servers', "needs at least 1 entry"),
    ]
    _, errors = errors_of(MINIMAL.replace("[[listener]]", "[listener]"), tmp_path)
    assert errors == [("listener", "expected an array; got a table")]


def test_toml_syntax_error(tmp_path: Path) -> None:
    text, errors = errors_of("workers = 1\n[[pool]\n", tmp_path)
    ((where, msg),) = errors
    assert where == "line 2, column 7" and msg.startswith("invalid TOML: ")
    assert "line 2" in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: cannot read file: No such file or directory"


def test_direct_model_validation_runs_cross_checks() -> None:
    with pytest.raises(ValidationError, match="no pool named"):
        Config.model_validate(
            {
                "listener": [{"name": "l", "bind": "127.0.0.1:0", "pool": "x"}],
                "pool": [{"name": "p", "servers": [{"address": "127.0.0.1:1"}]}],
            }
        )
