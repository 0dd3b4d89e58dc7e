"""``[cluster]``: the three Redis URL forms, timing rules, and no table = no cluster."""

from __future__ import annotations

import pytest

from steelyard.cluster.sentinel import parse_sentinel
from steelyard.config import ConfigError, parse_config

BASE = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"

[[pool]]
name = "app"
servers = [ { address = "127.0.0.1:9000" } ]
"""


def test_without_the_table_there_is_no_cluster():
    assert parse_config(BASE).cluster is None


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@127.0.0.1:6380/1",
        "redis+sentinel://127.0.0.1:26379,127.0.0.2:26379/mymaster/2",
    ],
)
def test_redis_url_forms(url):
    c = parse_config(BASE + f'[cluster]\nredis = "{url}"\nnode = "lb1"\nheartbeat = "500ms"\n').cluster
    assert (c.redis, c.node, c.heartbeat, c.expire) == (url, "lb1", 0.5, 5.0)


def test_sentinel_url_is_split():
    target = parse_sentinel("redis+sentinel://127.0.0.1:26379,127.0.0.2:26380/mymaster/2")
    assert target.sentinels == (("127.0.0.1", 26379), ("127.0.0.2", 26380))
    assert (target.master, target.db) == ("mymaster", 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('redis = "http://x:1"\nnode = "a"', "redis must start with"),
        ('redis = "redis+sentinel://127.0.0.1:26379"\nnode = "a"', "Sentinel URL"),
        ('redis = "redis://127.0.0.1:6379"\nnode = "a"\nheartbeat = "2s"\nexpire = "3s"', "twice heartbeat"),
        ('redis = "redis://127.0.0.1:6379"', "node"),
    ],
)
def test_bad_cluster_tables_are_refused(extra, message):
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "[cluster]\n" + extra + "\n")
    assert message in str(err.value)
