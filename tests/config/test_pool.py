"""Tests for steelyard.config.pool and the pool keys of issue 4 (health checks and failover):
valid values and defaults, status ranges, and errors that name file + key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from steelyard.cli import describe, main
from steelyard.config import parse_config
from steelyard.config.pool import HealthConfig, OutlierConfig, status_ranges

from .test_model import errors_of, toml

MINIMAL = toml("""
    [[listener]]
    name = "web"
    bind = "127.0.0.1:0"
    pool = "app"

    [[pool]]
    name = "app"
    servers = [ { address = "127.0.0.1:9001", name = "a" }, { address = "127.0.0.1:9002", name = "b" } ]
""")

FULL = toml("""
    [[listener]]
    name = "web"
    bind = "127.0.0.1:0"
    pool = "app"

    [[pool]]
    name = "app"
    algorithm = "least_conn"
    retries = 3
    retry_budget = 0.5
    try_timeout = "800ms"
    retry_header = true
    slow_start = "20s"
    slow_start_floor = 0.25
    max_conns = 40
    max_queue = 7
    queue_timeout = "1.5s"
    panic_threshold = 30
    servers = [
        { address = "127.0.0.1:9001", name = "a", max_conns = 5 },
        { address = "127.0.0.1:9002", name = "b", state = "drain" },
        { address = "127.0.0.1:9003", name = "c", state = "maint" },
        { address = "127.0.0.1:9004", name = "spare", backup = true },
    ]

    [pool.health]
    type = "http"
    path = "/status/live?full=1"
    host = "health.example.test"
    expect_status = "200-299, 404"
    expect_body = "ok"
    interval = "5s"
    fail_interval = "1s"
    timeout = "300ms"
    rise = 4
    fall = 6
    jitter = 0.2

    [pool.outlier]
    consecutive_failures = 3
    consecutive_5xx = 10
    base_ejection = "10s"
    max_ejection = "2m"
    max_ejection_percent = 34
""")


def with_pool_keys(lines: str) -> str:
    """MINIMAL with ``lines`` added to pool "app" (before its servers)."""
    return MINIMAL.replace('name = "app"\n', f'name = "app"\n{lines}\n', 1)


def with_table(table: str, lines: str) -> str:
    """MINIMAL with ``[pool.<table>]`` holding ``lines``."""
    return MINIMAL + f"\n[pool.{table}]\n{lines}\n"


# --- valid configurations ---------------------------------------------------------


def test_defaults_without_health_or_outlier_tables() -> None:
    app = parse_config(MINIMAL).pool("app")
    assert app.health is None  # no active checks unless asked for
    assert app.outlier == OutlierConfig()  # passive health is on by default
    assert app.outlier.consecutive_failures == 5
    assert app.outlier.consecutive_5xx == 0
    assert (app.outlier.base_ejection, app.outlier.max_ejection) == (30.0, 300.0)
    assert app.outlier.max_ejection_percent == 50
    assert (app.retries, app.retry_budget, app.try_timeout, app.retry_header) == (2, 0.2, None, False)
    assert (app.slow_start, app.slow_start_floor) == (None, 0.1)
    assert (app.max_conns, app.max_queue, app.queue_timeout, app.panic_threshold) == (None, 100, 5.0, 0)
    for server in app.servers:
        assert (server.backup, server.max_conns, server.state) == (False, None, "ready")


def test_an_empty_health_table_gets_the_defaults() -> None:
    health = parse_config(with_table("health", "")).pool("app").health
    assert health is not None
    assert (health.type, health.path, health.host) == ("http", "/healthz", None)
    assert (health.expect_status, health.expect_body) == ("200-399", None)
    assert health.status_ranges == ((200, 399),)
    assert (health.rise, health.fall) == (2, 3)
    assert (health.interval, health.timeout, health.jitter) == (2.0, 1.0, 0.1)
    assert health.fail_interval is None
    assert health.failing_interval == 1.0  # interval / 2


def test_failing_interval_follows_interval_unless_given() -> None:
    assert HealthConfig(interval="300ms").failing_interval == pytest.approx(0.15)
    assert HealthConfig(interval="300ms", fail_interval="2s").failing_interval == 2.0


def test_every_key_parses_to_its_value() -> None:
    app = parse_config(FULL).pool("app")
    h = app.health
    assert h is not None
    assert (h.type, h.path, h.host) == ("http", "/status/live?full=1", "health.example.test")
    assert h.expect_status == "200-299, 404" and h.status_ranges == ((200, 299), (404, 404))
    assert h.expect_body == "ok"
    assert (h.interval, h.fail_interval, h.failing_interval, h.timeout) == (5.0, 1.0, 1.0, 0.3)
    assert (h.rise, h.fall, h.jitter) == (4, 6, 0.2)
    o = app.outlier
    assert (o.consecutive_failures, o.consecutive_5xx) == (3, 10)
    assert (o.base_ejection, o.max_ejection, o.max_ejection_percent) == (10.0, 120.0, 34)
    assert (app.retries, app.retry_budget, app.try_timeout, app.retry_header) == (3, 0.5, 0.8, True)
    assert (app.slow_start, app.slow_start_floor) == (20.0, 0.25)
    assert (app.max_conns, app.max_queue, app.queue_timeout, app.panic_threshold) == (40, 7, 1.5, 30)
    a, b, c, spare = app.servers
    assert (a.max_conns, a.state, a.backup) == (5, "ready", False)
    assert (b.max_conns, b.state) == (None, "drain")
    assert c.state == "maint"
    assert (spare.backup, spare.state) == (True, "ready")


def test_tcp_check_with_its_own_keys() -> None:
    h = parse_config(with_table("health", 'type = "tcp"\ninterval = "500ms"\nrise = 1\nfall = 1')).pool("app").health
    assert h is not None
    assert (h.type, h.interval, h.rise, h.fall) == ("tcp", 0.5, 1, 1)


def test_outlier_can_be_turned_off_and_limits_are_inclusive() -> None:
    o = (
        parse_config(
            with_table(
                "outlier",
                'consecutive_failures = 0\nbase_ejection = "1m"\nmax_ejection = "60s"\nmax_ejection_percent = 100',
            )
        )
        .pool("app")
        .outlier
    )
    assert (o.consecutive_failures, o.base_ejection, o.max_ejection, o.max_ejection_percent) == (0, 60.0, 60.0, 100)


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("200-399, 404", ((200, 399), (404, 404))),
        ("200", ((200, 200),)),
        ("200,204", ((200, 200), (204, 204))),
        (" 200 - 299 ,301 ", ((200, 299), (301, 301))),
        ("100-599", ((100, 599),)),
        ("250-250", ((250, 250),)),
    ],
)
def test_status_ranges(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert status_ranges(text) == ranges


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2xx", 'expected status codes or ranges, e.g. "200-399" or "200, 204"; got "2xx"'),
        ("", "expected status codes or ranges"),
        ("200,", "expected status codes or ranges"),
        ("200;204", "expected status codes or ranges"),
        ("20", "expected status codes or ranges"),
        ("399-200", "run low to high"),
        ("700", "within 100-599"),
        ("200-600", "within 100-599"),
        ("099", "within 100-599"),
    ],
)
def test_status_ranges_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="status") as info:
        status_ranges(text)
    assert fragment in str(info.value)


# --- errors, each naming its key path ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2xx", 'got "2xx"'),
        ("399-200", "399-200"),
        ("700", "700"),
    ],
)
def test_bad_expect_status(tmp_path: Path, value: str, fragment: str) -> None:
    text, errors = errors_of(with_table("health", f'expect_status = "{value}"'), tmp_path)
    assert len(errors) == 1
    path, msg = errors[0]
    assert path == 'pool "app" → health → expect_status'
    assert "status" in msg and fragment in msg
    assert 'pool "app" → health → expect_status' in text


@pytest.mark.parametrize(
    ("line", "key", "fragment"),
    [
        ("rise = 0", "rise", "greater than or equal to 1; got 0"),
        ("fall = 0", "fall", "greater than or equal to 1; got 0"),
        ("rise = 101", "rise", "less than or equal to 100; got 101"),
        ("jitter = 0.9", "jitter", "less than or equal to 0.5; got 0.9"),
        ("jitter = -0.1", "jitter", "greater than or equal to 0; got -0.1"),
        ('interval = "2"', "interval", 'expected a duration with a unit (ms, s, m, h, d), e.g. "2s"; got "2"'),
        ("interval = 2", "interval", "expected a duration with a unit"),
        ('timeout = "0s"', "timeout", "greater than zero"),
        ('fail_interval = "1 hour"', "fail_interval", "expected a duration with a unit"),
        ('path = "healthz"', "path", "healthz"),
        ('type = "udp"', "type", '"udp"'),
        ('rise = "2"', "rise", "2"),
    ],
)
def test_bad_health_values(tmp_path: Path, line: str, key: str, fragment: str) -> None:
    _, errors = errors_of(with_table("health", line), tmp_path)
    assert len(errors) == 1
    path, msg = errors[0]
    assert path == f'pool "app" → health → {key}'
    assert fragment in msg


def test_tcp_check_refuses_http_keys(tmp_path: Path) -> None:
    _, errors = errors_of(with_table("health", 'type = "tcp"\npath = "/healthz"\nexpect_body = "ok"'), tmp_path)
    assert len(errors) == 1
    path, msg = errors[0]
    assert path == 'pool "app" → health'
    assert "path" in msg and "expect_body" in msg and 'only apply to type = "http"' in msg
    _, errors = errors_of(with_table("health", 'type = "tcp"\nhost = "x.test"\nexpect_status = "200"'), tmp_path)
    assert len(errors) == 1
    assert "host" in errors[0][1] and "expect_status" in errors[0][1]


def test_unknown_health_key_suggests_the_right_one(tmp_path: Path) -> None:
    _, errors = errors_of(with_table("health", 'intervall = "2s"'), tmp_path)
    assert errors == [('pool "app" → health → intervall', "unknown key; did you mean 'interval'?")]
    _, errors = errors_of(with_table("outlier", "consecutive_failure = 2"), tmp_path)
    assert errors == [
        ('pool "app" → outlier → consecutive_failure', "unknown key; did you mean 'consecutive_failures'?")
    ]


def test_max_ejection_shorter_than_base(tmp_path: Path) -> None:
    _, errors = errors_of(with_table("outlier", 'base_ejection = "1m"\nmax_ejection = "30s"'), tmp_path)
    assert errors == [('pool "app" → outlier', "max_ejection must not be shorter than base_ejection")]
    # only max_ejection given, below the default base of 30s
    _, errors = errors_of(with_table("outlier", 'max_ejection = "10s"'), tmp_path)
    assert errors == [('pool "app" → outlier', "max_ejection must not be shorter than base_ejection")]


@pytest.mark.parametrize(
    ("line", "key", "fragment"),
    [
        ("max_ejection_percent = 101", "max_ejection_percent", "less than or equal to 100; got 101"),
        ("consecutive_failures = -1", "consecutive_failures", "greater than or equal to 0; got -1"),
        ('base_ejection = "30"', "base_ejection", "expected a duration with a unit"),
    ],
)
def test_bad_outlier_values(tmp_path: Path, line: str, key: str, fragment: str) -> None:
    _, errors = errors_of(with_table("outlier", line), tmp_path)
    assert len(errors) == 1
    assert errors[0][0] == f'pool "app" → outlier → {key}'
    assert fragment in errors[0][1]


def test_server_state_and_max_conns(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "a" }', 'name = "a", state = "sleeping" }').replace(
        'name = "b" }', 'name = "b", max_conns = 0 }'
    )
    _, errors = errors_of(text, tmp_path)
    assert len(errors) == 2
    (path_a, msg_a), (path_b, msg_b) = sorted(errors)
    assert path_a == 'pool "app" → servers "a" → state'
    assert "'ready', 'drain' or 'maint'" in msg_a and '"sleeping"' in msg_a
    assert path_b == 'pool "app" → servers "b" → max_conns'
    assert "greater than or equal to 1; got 0" in msg_b


@pytest.mark.parametrize(
    ("line", "key", "fragment"),
    [
        ("max_conns = 0", "max_conns", "greater than or equal to 1; got 0"),
        ("panic_threshold = 150", "panic_threshold", "less than or equal to 100; got 150"),
        ("panic_threshold = -1", "panic_threshold", "greater than or equal to 0; got -1"),
        ("retry_budget = 2.0", "retry_budget", "less than or equal to 1; got 2.0"),
        ("retries = 11", "retries", "less than or equal to 10; got 11"),
        ("retries = -1", "retries", "greater than or equal to 0; got -1"),
        ("slow_start_floor = 0.0", "slow_start_floor", "greater than 0; got 0.0"),
        ("slow_start_floor = 1.5", "slow_start_floor", "less than or equal to 1; got 1.5"),
        ("max_queue = -1", "max_queue", "greater than or equal to 0; got -1"),
        ('try_timeout = "5"', "try_timeout", 'expected a duration with a unit (ms, s, m, h, d), e.g. "2s"; got "5"'),
        ('slow_start = "30"', "slow_start", "expected a duration with a unit"),
        ("queue_timeout = 5", "queue_timeout", "expected a duration with a unit"),
    ],
)
def test_bad_pool_values(tmp_path: Path, line: str, key: str, fragment: str) -> None:
    text, errors = errors_of(with_pool_keys(line), tmp_path)
    assert len(errors) == 1
    path, msg = errors[0]
    assert path == f'pool "app" → {key}'
    assert fragment in msg
    assert f'pool "app" → {key}: ' in text


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (with_pool_keys('retry_header = "yes"'), 'pool "app" → retry_header'),
        (with_pool_keys("retry_header = 1"), 'pool "app" → retry_header'),
        (with_pool_keys("retry_budget = true"), 'pool "app" → retry_budget'),  # accepted as 1.0
        (with_pool_keys('slow_start_floor = "0.5"'), 'pool "app" → slow_start_floor'),
        (MINIMAL.replace('name = "a" }', 'name = "a", backup = "no" }'), 'pool "app" → servers "a" → backup'),
        (with_table("health", 'jitter = "0.2"'), 'pool "app" → health → jitter'),
    ],
    ids=[
        "retry_header-string",
        "retry_header-int",
        "retry_budget-bool",
        "slow_start_floor-string",
        "backup-string",
        "jitter-string",
    ],
)
def test_toml_types_are_not_coerced(tmp_path: Path, text: str, path: str) -> None:
    """TOML is typed: a string or boolean where a boolean or number belongs is an error, as it is
    for every Int key and for splice / per_datagram / hash_balance_factor."""
    _, errors = errors_of(text, tmp_path)
    assert [p for p, _ in errors] == [path]


def test_several_new_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = with_pool_keys("panic_threshold = 150\nretry_budget = 2.0") + (
        '\n[pool.health]\nrise = 0\ninterval = "2"\n\n[pool.outlier]\nbase_ejection = "1m"\nmax_ejection = "1s"\n'
    )
    _, errors = errors_of(text, tmp_path)
    paths = sorted(path for path, _ in errors)
    assert paths == sorted(
        [
            'pool "app" → panic_threshold',
            'pool "app" → retry_budget',
            'pool "app" → health → rise',
            'pool "app" → health → interval',
            'pool "app" → outlier',
        ]
    )


def test_health_config_is_usable_directly() -> None:
    check = HealthConfig(path="/ping", expect_status="200,204", timeout="100ms")
    assert (check.path, check.timeout, check.status_ranges) == ("/ping", 0.1, ((200, 200), (204, 204)))
    with pytest.raises(ValueError, match="only apply to type"):
        HealthConfig(type="tcp", expect_body="ok")


# --- steelyard check ----------------------------------------------------------------


def test_describe_runs_on_every_new_key() -> None:
    out = describe(parse_config(FULL))
    assert "app" in out and "least_conn" in out
    lines = {line.strip().split(":")[0]: line for line in out.splitlines() if ":" in line}
    health = lines["health"]
    for fragment in (
        "/status/live?full=1",
        "200-299, 404",
        "'ok'",
        "5s",
        "1s while failing",
        "300ms",
        "rise 4",
        "fall 6",
    ):
        assert fragment in health
    for fragment in ("3 failures", "10 failures or 5xx", "10s", "2m", "34%"):
        assert fragment in lines["ejection"]
    for fragment in ("retries: 3", "50%", "800ms"):
        assert fragment in lines["retries"]
    assert "20s" in lines["slow start"] and "25%" in lines["slow start"]
    assert "7 requests" in lines["queue"] and "1.5s" in lines["queue"]
    assert "30%" in lines["panic"]
    servers = {line.split()[1]: line for line in out.splitlines() if line.strip().startswith("server ")}
    assert set(servers) == {"a", "b", "c", "spare"}
    assert "127.0.0.1:9001" in servers["a"] and "max 5 in flight" in servers["a"]
    assert "drain" in servers["b"] and "maint" in servers["c"] and "backup" in servers["spare"]
    assert "backup" not in servers["a"] and "drain" not in servers["a"]


def test_describe_without_checks_or_ejection() -> None:
    out = describe(parse_config(with_table("outlier", "consecutive_failures = 0")))
    assert "health: no active checks" in out
    assert "ejection: off" in out
    out = describe(parse_config(with_table("health", 'type = "tcp"\ninterval = "4s"')))
    assert "health: TCP connect every 4s (2s while failing)" in out
    assert "GET" not in out


def test_check_command_accepts_every_new_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "full.toml"
    path.write_text(FULL)
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: configuration is valid" in out
    assert "spare 127.0.0.1:9004" in out


def test_check_command_reports_a_bad_health_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(with_table("health", "rise = 0"))
    with pytest.raises(SystemExit) as info:
        main(["check", "--config", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'{path}: pool "app" → health → rise: ' in err
