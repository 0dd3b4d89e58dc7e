"""``filters`` on listeners and routes: classes imported when the file is read, failures named
by key path, built-in filters by name, http listeners only, the summary."""

from __future__ import annotations

import pytest

from steelyard.config import ConfigError, parse_config
from steelyard.config.summary import describe
from steelyard.proxy.http.builtin import RateLimit, RedirectHttps

BASE = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"
mode = "{mode}"
{extra}

[[pool]]
name = "app"
servers = [ {{ address = "127.0.0.1:9" }} ]
"""


def cfg(extra: str, mode: str = "http"):
    return parse_config(BASE.format(extra=extra, mode=mode))


def errors(extra: str, mode: str = "http") -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as exc:
        cfg(extra, mode)
    return exc.value.errors


def test_filters_are_built_with_their_options_in_order():
    lc = cfg(
        'filters = [ { use = "tests.filterdemo:Tag", options = { value = "x" } }, '
        '{ use = "tests.filterdemo:RequireKey", options = { key = "k" } } ]'
    ).listeners[0]
    tag, key = (f.filter for f in lc.filters)
    assert type(tag).__name__ == "Tag" and tag.options == {"value": "x"} and key.key == "k"


def test_a_missing_module_is_named_by_key_path():
    [(path, msg)] = errors('filters = [ { use = "mypkg.filters:Tag" } ]')
    assert path == 'listener "web" → filters #1 → use'
    assert msg.startswith(
        "cannot import module 'mypkg.filters' for filter 'mypkg.filters:Tag': No module named 'mypkg'"
    )


@pytest.mark.parametrize(
    ("use", "says"),
    [
        ("tests.filterdemo:Missing", "module 'tests.filterdemo' has no class 'Missing'"),
        ("tests.filterdemo:NotAFilter", "is not a filter: a filter is a subclass of steelyard.filters.Filter"),
        ("no_such_builtin", "unknown filter 'no_such_builtin'; choose one of redirect_https, rate_limit"),
        ("bad name:X", "a custom filter is named 'package.module:ClassName'"),
    ],
)
def test_a_class_that_cannot_be_had_is_refused(use: str, says: str):
    [(path, msg)] = errors(f'filters = [ {{ use = "{use}" }} ]')
    assert path.endswith("filters #1 → use") and says in msg


def test_options_the_class_refuses_are_named_by_key_path():
    [(path, msg)] = errors('filters = [ { use = "tests.filterdemo:RequireKey" } ]')
    assert (path, msg) == ('listener "web" → filters #1 → options', "tests.filterdemo:RequireKey: missing option 'key'")
    [(path, msg)] = errors('filters = [ { use = "rate_limit", options = { rate = 0 } } ]')
    assert path.endswith("options") and "'rate' must be > 0" in msg


def test_route_filters_are_checked_where_they_are():
    extra = (
        '[[listener.route]]\npath_prefix = "/api/"\npool = "app"\n'
        'filters = [ { use = "tests.filterdemo:Tag" }, { use = "tests.filterdemo:Nope" } ]'
    )
    [(path, _)] = errors(extra)
    assert path == 'listener "web" → route #1 → filters #2 → use'


def test_an_unknown_key_in_an_entry_gets_a_suggestion():
    assert ('listener "web" → filters #1 → uses', "unknown key; did you mean 'use'?") in errors(
        'filters = [ { uses = "rate_limit" } ]'
    )


@pytest.mark.parametrize("mode", ["tcp", "udp"])
def test_filters_are_for_http_listeners_only(mode: str):
    found = errors('filters = [ { use = "tests.filterdemo:Tag" } ]', mode)
    assert ('listener "web" → filters', f"only for mode 'http' listeners; this one is mode {mode!r}") in found


def test_built_in_filters_by_name_take_their_options():
    lc = cfg(
        'filters = [ { use = "redirect_https", options = { https_port = 8443 } }, '
        '{ use = "rate_limit", options = { rate = 2.5, burst = 4 } } ]'
    ).listeners[0]
    redirect, limit = (f.filter for f in lc.filters)
    assert isinstance(redirect, RedirectHttps) and redirect.port == 8443
    assert isinstance(limit, RateLimit) and (limit.buckets.rate, limit.buckets.burst) == (2.5, 4.0)
    assert (
        "'https_port' must be ≤ 65535"
        in errors('filters = [ { use = "redirect_https", options = { https_port = 70000 } } ]')[0][1]
    )


def test_the_summary_lists_filters():
    text = describe(
        cfg(
            'filters = [ { use = "tests.filterdemo:Tag" } ]\n'
            '[[listener.route]]\npath_prefix = "/api/"\npool = "app"\nfilters = [ { use = "rate_limit", options = { rate = 1 } } ]'
        )
    )
    assert "filters: tests.filterdemo:Tag" in text and "→ pool app  filters rate_limit" in text
