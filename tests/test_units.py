import pytest

from steelyard.units import format_duration, parse_duration, split_host_port


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("150ms", 0.15),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        (".5s", 0.5),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["30", 30, "2 h", "-1s", "s", "", "1.5"])
def test_durations_need_a_unit_and_a_sign(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_whole_hours_and_days_display_in_them():
    assert [format_duration(s) for s in (3600.0, 7200.0, 86400.0, 5400.0, 90.0)] == ["1h", "2h", "1d", "90m", "90s"]


def test_zero_duration_only_where_allowed():
    with pytest.raises(ValueError, match="greater than zero"):
        parse_duration("0ms")
    assert parse_duration("0ms", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:80", ("::1", 80)), ("localhost:1", ("localhost", 1))],
)
def test_addresses_split(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1", ":80", "::1:80", "[::1]80", "host:99999", "host:0", "a b:1"])
def test_bad_addresses_say_what_is_wrong(bad):
    with pytest.raises(ValueError, match=bad.replace("[", r"\[").replace("]", r"\]")):
        split_host_port(bad)
    assert split_host_port("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
