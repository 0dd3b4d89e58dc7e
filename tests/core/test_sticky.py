"""steelyard.core.sticky: the signed cookie codec and the stick table, on a fake clock."""

from __future__ import annotations

import base64

import pytest

from steelyard.core.sticky import CookieCodec, StickTable

SECRET = b"0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_round_trip_names_the_server_opaquely() -> None:
    clock = Clock()
    codec = CookieCodec(SECRET, clock=clock)
    value = codec.encode("web-1")
    assert "web-1" not in value and len(value) == 43
    sid, issued, seen = codec.decode(value)
    assert sid == codec.server_id("web-1") != codec.server_id("web-2")
    assert issued == seen == int(clock.t)


def test_forged_tampered_and_foreign_values_are_rejected() -> None:
    clock = Clock()
    codec = CookieCodec(SECRET, clock=clock)
    value = codec.encode("web-1")
    raw = bytearray(base64.urlsafe_b64decode(value + "="))
    raw[0] ^= 1  # another server id, same MAC
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    other = CookieCodec(b"another secret of 32 bytes......", clock=clock).encode("web-1")
    for bad in (tampered, other, "", "web-1", value[:-1], value + "A", "!" * 43):
        assert codec.decode(bad) is None


def test_max_age_and_idle_expiry() -> None:
    clock = Clock()
    codec = CookieCodec(SECRET, clock=clock, max_age=100, idle=40)
    value = codec.encode("a")
    clock.t += 30
    assert codec.decode(value) is not None
    assert codec.needs_refresh(codec.decode(value)[2])  # seen 30 s ago > idle / 4
    refreshed = codec.encode("a", issued=codec.decode(value)[1])
    clock.t += 35  # 65 s after issue: the old value is idle-stale, the refreshed one is not
    assert codec.decode(value) is None
    assert codec.decode(refreshed) is not None
    clock.t += 36  # 101 s after issue: past max_age whatever the refreshes
    assert codec.decode(codec.encode("a", issued=int(clock.t) - 101)) is None


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        CookieCodec(b"short", clock=Clock())


def test_table_maps_and_expires_idle_entries() -> None:
    clock = Clock(0.0)
    table = StickTable(10, 60.0, clock=clock)
    table.put("10.0.0.1", "a")
    clock.t = 50
    assert table.get("10.0.0.1") == "a"  # a lookup refreshes the entry
    clock.t = 100
    assert table.get("10.0.0.1") == "a"
    clock.t = 161
    assert table.get("10.0.0.1") is None
    assert len(table) == 0


def test_table_size_bound_evicts_least_recently_used() -> None:
    clock = Clock(0.0)
    table = StickTable(3, 1e9, clock=clock)
    for i in range(3):
        table.put(f"c{i}", f"s{i}")
    assert table.get("c0") == "s0"  # c0 is now the most recently used
    table.put("c3", "s3")
    assert len(table) == 3
    assert table.get("c1") is None and table.get("c0") == "s0" and table.get("c3") == "s3"
    for i in range(100):
        table.put(f"x{i}", "s")
    assert len(table) == 3


def test_put_purges_expired_entries_a_bounded_amount() -> None:
    clock = Clock(0.0)
    table = StickTable(1000, 10.0, clock=clock)
    for i in range(20):
        table.put(f"c{i}", "s")
    clock.t = 100
    table.put("new", "s")
    assert 1 < len(table) <= 20 - 8 + 1  # eight purged per call at most, never more work than that
    for i in range(3):
        table.put(f"n{i}", "s")
    assert len(table) == 4  # the old ones are all gone
