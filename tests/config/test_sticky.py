"""[pool.sticky]: validation with errors that name the key path."""

from __future__ import annotations

import pytest

from steelyard.config import ConfigError, parse_config

BASE = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"

[[pool]]
name = "app"
servers = [ { address = "127.0.0.1:9001" } ]
"""


def test_defaults() -> None:
    cfg = parse_config(BASE + '[pool.sticky]\nmode = "cookie"\n').pool("app").sticky
    assert (cfg.cookie, cfg.secret, cfg.persist, cfg.drain_grace) == ("SYID", None, False, 0.0)
    assert parse_config(BASE).pool("app").sticky is None


@pytest.mark.parametrize(
    "table, fragment",
    [
        ('mode = "sticky"', "mode"),
        ('mode = "cookie"\nsecret = "short"', "secret"),
        ('mode = "cookie"\ncookie = "a b"', "cookie"),
        ('mode = "cookie"\ntable_size = 10', "table_size only apply"),
        ('mode = "source"\ncookie = "X"', "cookie only apply"),
        ('mode = "source"\npersist = "yes"', "persist"),
        ('mode = "cookie"\ndrain_grace = 5', "drain_grace"),
    ],
)
def test_errors_name_the_key(table: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "[pool.sticky]\n" + table + "\n")
    assert 'pool "app"' in str(err.value) and "sticky" in str(err.value) and fragment in str(err.value)


def test_sticky_pool_behind_an_l4_listener_is_refused() -> None:
    text = BASE.replace('pool = "app"', 'pool = "app"\nmode = "tcp"', 1) + '[pool.sticky]\nmode = "source"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert "only http listeners honour" in str(err.value)
