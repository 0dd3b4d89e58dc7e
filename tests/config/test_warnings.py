"""``steelyard check`` warns about keys that are valid but do nothing for the chosen algorithm
(steelyard.config.warnings), and says so on the command line without failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from steelyard.cli import main
from steelyard.config import parse_config
from steelyard.config.warnings import config_warnings

from .test_model import toml

BASE = toml("""
    [[listener]]
    name = "web"
    bind = "127.0.0.1:0"
    pool = "app"

    [[pool]]
    name = "app"
""")
SERVERS = 'servers = [ { address = "127.0.0.1:9001", name = "a" }, { address = "127.0.0.1:9002", name = "b" } ]\n'


def warnings_of(pool_keys: str, servers: str = SERVERS) -> list[tuple[str, str]]:
    return config_warnings(parse_config(BASE + pool_keys + "\n" + servers))


@pytest.mark.parametrize(
    ("keys", "path", "words"),
    [
        ('algorithm = "round_robin"\nhash_on = "uri"', 'pool "app" → hash_on', "only consistent_hash reads it"),
        ('algorithm = "least_conn"\nhash_on = "client_ip"', 'pool "app" → hash_on', "'least_conn'"),
        ('algorithm = "ip_hash"\nhash_on = "header:X-User"', 'pool "app" → hash_on', "ip_hash always hashes"),
        ('algorithm = "p2c"\nhash_balance_factor = 1.5', 'pool "app" → hash_balance_factor', "'p2c'"),
        ('algorithm = "least_conn"\newma_decay = "5s"', 'pool "app" → ewma_decay', "only least_time"),
        ('algorithm = "consistent_hash"\nslow_start = "30s"', 'pool "app" → slow_start', "off for consistent_hash"),
        ("slow_start_floor = 0.5", 'pool "app" → slow_start_floor', "without slow_start"),
        ("max_queue = 10", 'pool "app" → max_queue', "max_conns"),
        ("retries = 0\nretry_budget = 0.5", 'pool "app" → retry_budget', "retries = 0"),
        ("tls_verify = false", 'pool "app" → tls_verify', "tls = true"),
    ],
)
def test_a_key_the_algorithm_ignores_is_named(keys: str, path: str, words: str) -> None:
    ((where, msg),) = warnings_of(keys)
    assert where == path
    assert words in msg


def test_weights_under_round_robin_point_to_weighted_round_robin() -> None:
    servers = 'servers = [ { address = "127.0.0.1:9001", weight = 3, name = "a" }, { address = "127.0.0.1:9002" } ]'
    ((where, msg),) = warnings_of('algorithm = "round_robin"', servers)
    assert where == 'pool "app" → servers "a" → weight'
    assert "weighted_round_robin" in msg
    assert warnings_of('algorithm = "weighted_round_robin"', servers) == []


@pytest.mark.parametrize(
    "keys",
    [
        'algorithm = "consistent_hash"\nhash_on = "uri"\nhash_balance_factor = 1.25',
        'algorithm = "ip_hash"\nhash_balance_factor = 1.25',
        'algorithm = "least_time"\newma_decay = "5s"',
        'algorithm = "least_conn"\nslow_start = "30s"\nslow_start_floor = 0.2',
        "max_conns = 10\nmax_queue = 5",
        'algorithm = "tests.core.balancing.user_algo:FirstServer"\nhash_on = "uri"\newma_decay = "5s"',
        "",  # defaults are never judged
    ],
)
def test_keys_that_take_effect_are_not_warned_about(keys: str) -> None:
    assert warnings_of(keys) == []


def test_check_prints_warnings_and_still_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.toml"
    path.write_text(BASE + 'algorithm = "round_robin"\nhash_on = "uri"\n' + SERVERS)
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "configuration is valid (1 warning(s))" in out
    assert f'warning: {path}: pool "app" → hash_on: ignored by algorithm' in err
