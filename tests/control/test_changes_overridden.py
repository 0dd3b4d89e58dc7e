"""A reload names the file edits that runtime changes override (steelyard.control.changes.overridden)."""

from __future__ import annotations

from steelyard.config import parse_config
from steelyard.control.changes import overridden


def config(pool: str, servers: str) -> object:
    return parse_config(
        f'[[listener]]\nname = "web"\nbind = "127.0.0.1:0"\npool = "app"\n\n[[pool]]\nname = "app"\n{pool}\n'
        f"servers = [ {servers} ]\n"
    )


A = '{ address = "127.0.0.1:9001", name = "a" }'
B = '{ address = "127.0.0.1:9002", name = "b" }'


def record(**pool: object) -> dict:
    return {"version": 1, "pools": {"app": {"algorithm": None, "removed": [], "servers": {}, **pool}}}


def test_an_edited_weight_that_a_runtime_weight_holds_is_named() -> None:
    old = config("", f"{A}, {B}")
    new = config("", f"{A.replace(' }', ', weight = 5 }')}, {B}")
    rec = record(servers={"a": {"address": "127.0.0.1:9001", "weight": 2, "state": "ready", "origin": "config"}})
    (why,) = overridden(old, new, rec)
    assert why == (
        "pool app: server a: the file's weight changed 1 -> 5, but a runtime change keeps 2 "
        "(drop it with: steelyard ctl reload --discard-runtime app)"
    )


def test_algorithm_state_and_removed_servers() -> None:
    old = config('algorithm = "round_robin"', f"{A}, {B}")
    drained = '{ address = "127.0.0.1:9001", name = "a", state = "drain" }'
    new = config('algorithm = "least_conn"', f"{drained}, {B.replace('9002', '9003')}")
    rec = record(
        algorithm="p2c",
        removed=["b"],
        servers={"a": {"address": "127.0.0.1:9001", "weight": 1, "state": "maint", "origin": "config"}},
    )
    found = overridden(old, new, rec)
    assert [w.split(" (drop")[0] for w in found] == [
        "pool app: the file's algorithm changed round_robin -> least_conn, but a runtime change keeps p2c",
        "pool app: server a: the file's state changed ready -> drain, but a runtime change keeps maint",
        "pool app: server b was edited in the file but stays removed at runtime",
    ]


def test_nothing_is_named_when_the_file_did_not_touch_the_key_or_agrees() -> None:
    old = config("", f"{A}, {B}")
    rec = record(
        removed=["b"], servers={"a": {"address": "127.0.0.1:9001", "weight": 2, "state": "ready", "origin": "config"}}
    )
    assert overridden(old, config("retries = 1", f"{A}, {B}"), rec) == []  # other keys edited only
    agrees = config("", f"{A.replace(' }', ', weight = 2 }')}, {B}")
    assert overridden(old, agrees, rec) == []  # the file now says what the runtime change says
    assert overridden(old, config("", f"{A}, {B}"), {"version": 1, "pools": {"gone": {}}}) == []
