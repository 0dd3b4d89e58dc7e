"""Python filters through the real proxy: `steelyard serve` loading tests/filterdemo.py by dotted
path, a demo backend that echoes the headers it got, and raw clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import STEELYARD, servers_toml
from .rawhttp import RawConnection, get

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def config(backends, listener_filters: str, route_filters: str = "") -> str:
    return f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"
        filters = [ {listener_filters} ]

        [[listener.route]]
        path_prefix = "/api/"
        pool = "app"
        filters = [ {route_filters} ]

        [[pool]]
        name = "app"
        {servers_toml(backends)}
    """


FILTERS = """
    { use = "tests.filterdemo:Explode" },
    { use = "tests.filterdemo:Tag", options = { value = "from-filter" } },
    { use = "tests.filterdemo:SlowTag" },
    { use = "tests.filterdemo:AddHeader" },
    { use = "tests.filterdemo:PrintLog" },
"""
ROUTE = '{ use = "tests.filterdemo:RequireKey", options = { key = "sesame" } }'


@pytest.fixture
def filtered(backends, balancer):
    (b,) = backends([("only", "20ms")])  # (answers after 20 ms: a duration to see)
    return balancer(config([b], FILTERS, ROUTE), env=ENV)


def headers_seen(body: bytes) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def next_log(bal) -> dict:
    (m,) = bal.wait_for(r"filter-log (.*)")
    return json.loads(m.group(1))


def test_request_and_response_headers_and_logging(filtered):
    with RawConnection(filtered.port) as c:
        c.send(get("/page"))
        status, headers, body = c.response()
    assert status == 200
    seen = headers_seen(body)
    assert seen["x-tag"] == ["from-filter"] and seen["x-async"] == ["done"]  # (a sync and an async filter)
    assert headers["x-filtered"] == "200 via only"
    log = next_log(filtered)
    assert (log["path"], log["status"], log["resp"], log["server"]) == ("/page", 200, 200, "only")
    assert 0.015 < log["duration"] < 10 and log["pool"] == "app"
    assert log["vars"] == {"pool": None}  # (a listener's request_filter runs before routing)


def test_a_route_filter_answers_403_and_logging_sees_it(filtered):
    with RawConnection(filtered.port) as c:
        c.send(get("/api/x"))
        status, headers, body = c.response()
        assert (status, headers["x-denied-by"], body) == (403, "RequireKey", b"a key is needed\n")
        assert next_log(filtered)["status"] == 403
        c.send(get("/api/x", extra="X-Api-Key: sesame\r\n"))  # (the same connection goes on)
        status, _, body = c.response()
        assert status == 200 and headers_seen(body)["x-api-key"] == ["sesame"]
        c.send(get("/open"))  # (not the route: no key needed)
        assert c.response()[0] == 200


def test_a_raising_filter_answers_500_for_that_request_only(filtered):
    with RawConnection(filtered.port) as c:
        c.send(get("/explode"))
        assert c.response()[0] == 500
        c.send(get("/after"))
        assert c.response()[0] == 200
    (line,) = filtered.wait_for(r"filter tests\.filterdemo:Explode failed in request_filter.*")
    assert "RuntimeError: exploded on purpose" in line.group(0)


def test_a_reload_picks_up_a_changed_filter_list(backends, balancer):
    (b,) = backends(["only"])
    bal = balancer(config([b], '{ use = "tests.filterdemo:AddHeader", options = { name = "X-Before" } }'), env=ENV)
    with RawConnection(bal.port) as c:
        c.send(get("/"))
        assert "x-before" in c.response()[1]
    bal.config_path.write_text(
        textwrap.dedent(config([b], '{ use = "tests.filterdemo:AddHeader", options = { name = "X-After" } }'))
    )
    bal.proc.send_signal(signal.SIGHUP)
    bal.wait_for(r"steelyard: reloaded")
    with RawConnection(bal.port) as c:
        c.send(get("/"))
        headers = c.response()[1]
    assert "x-after" in headers and "x-before" not in headers


def test_check_names_a_missing_filter_class_by_key_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        textwrap.dedent(
            config([], '{ use = "tests.filterdemo:Tag" }', '{ use = "tests.filterdemo:NoSuchFilter" }').replace(
                "servers = [  ]", 'servers = [ { address = "127.0.0.1:9" } ]'
            )
        )
    )
    done = subprocess.run(
        [*STEELYARD, "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=60,
    )
    assert done.returncode != 0
    assert (
        f'{path}: listener "web" → route #1 → filters #1 → use: '
        "module 'tests.filterdemo' has no class 'NoSuchFilter' (filter 'tests.filterdemo:NoSuchFilter')"
    ) in done.stderr + done.stdout
