"""steelyard.filters: the public API filters use (Headers, Response, the request view)."""

from __future__ import annotations

import pytest

from steelyard.filters import REQUEST_MANAGED, Filter, Headers, Request, Response, ResponseHead
from steelyard.proxy.http.exchange import Exchange


def test_headers_compare_names_without_case_and_keep_order() -> None:
    h = Headers([("Accept", "a"), ("X-Multi", "1"), ("x-multi", "2")])
    assert h.get("ACCEPT") == "a" and h.get("missing") is None and h.get("missing", "d") == "d"
    assert h.get_all("X-MULTI") == ["1", "2"] and "x-multi" in h and "nope" not in h
    assert list(h) == [("Accept", "a"), ("X-Multi", "1"), ("x-multi", "2")] and len(h) == 3
    assert not h.changed


def test_set_replaces_every_field_of_a_name_in_the_place_of_the_first() -> None:
    h = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    h.set("a", "9")
    assert list(h) == [("a", "9"), ("B", "2")] and h.changed
    h.set("New", "x")
    assert list(h)[-1] == ("New", "x")


def test_add_appends_and_remove_removes_every_one_quietly() -> None:
    h = Headers({"A": "1"})
    h.add("a", "2")
    assert h.get_all("A") == ["1", "2"]
    h.remove("A")
    h.remove("never-there")
    assert len(h) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "v"), ("", "v"), ("X", "a\r\nInjected: 1"), ("X", "nul\x00"), ("X", "snow ☃")],
)
def test_names_must_be_tokens_and_values_must_not_break_the_head(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers().add(name, value)


def test_a_value_must_be_a_str() -> None:
    with pytest.raises(TypeError):
        Headers().set("X-Count", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["Content-Length", "transfer-encoding", "Connection", "Upgrade", "Proxy-Authorization"]
)
def test_framing_and_hop_by_hop_headers_stay_the_proxys(name: str) -> None:
    with pytest.raises(ValueError, match="proxy's"):
        Headers().set(name, "1")


def test_request_headers_also_keep_x_forwarded_proto_and_host_but_not_for() -> None:
    h = Headers(managed=REQUEST_MANAGED)
    h.set("X-Forwarded-For", "10.0.0.1")
    h.set("Host", "example.test")
    for name in ("X-Forwarded-Proto", "X-Forwarded-Host"):
        with pytest.raises(ValueError):
            h.set(name, "x")


def test_a_response_renders_with_its_length_and_the_connections_fate() -> None:
    r = Response(403, {"X-Why": "no key"}, "no\n")
    assert r.render(close=False) == b"HTTP/1.1 403 Forbidden\r\nX-Why: no key\r\nContent-Length: 3\r\n\r\nno\n"
    assert r.render(close=True).endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\nno\n")
    assert r.render(close=False, head_only=True).endswith(b"\r\n\r\n")  # (a HEAD request: no body)
    assert b"Content-Length" not in Response(204).render(close=False)
    assert Response(299).render(close=False).startswith(b"HTTP/1.1 299 Unknown\r\n")


@pytest.mark.parametrize("status", [101, 199, 600, "200"])
def test_a_response_status_is_a_final_one(status: object) -> None:
    with pytest.raises(ValueError):
        Response(status)  # type: ignore[arg-type]


def test_a_204_has_no_body_and_framing_headers_are_refused() -> None:
    with pytest.raises(ValueError):
        Response(204, body="x")
    with pytest.raises(ValueError):
        Response(200, {"Content-Length": "5"})


def exchange(url: bytes = b"/a/b?x=1", xff: bytes | None = None) -> Exchange:
    ex = Exchange(0.0)
    ex.method, ex.url, ex.host, ex.xff = b"GET", url, b"example.test", xff
    ex.parts = [b"Host", b": ", b"example.test", b"\r\n", b"Accept", b": ", b"*/*", b"\r\n"]
    return ex


def test_the_request_view_reads_the_exchange() -> None:
    req = Request(exchange(xff=b"10.0.0.9"))
    assert (req.method, req.target, req.path, req.query, req.host) == ("GET", "/a/b?x=1", "/a/b", "x=1", "example.test")
    assert list(req.headers) == [("Host", "example.test"), ("Accept", "*/*"), ("X-Forwarded-For", "10.0.0.9")]


def test_setting_path_or_query_rewrites_the_target() -> None:
    ex = exchange()
    req = Request(ex)
    req.path = "/v2/b"
    assert ex.url == b"/v2/b?x=1"
    req.query = ""
    assert ex.url == b"/v2/b"
    req.query = "y=2"
    req.target = "/c?z"
    assert (req.path, req.query, ex.url) == ("/c", "z", b"/c?z")


@pytest.mark.parametrize("target", ["c", "/a b", "/a#frag", "/\r\n", "/é☃", "/café"])
def test_a_target_must_be_origin_form_without_spaces(target: str) -> None:
    with pytest.raises(ValueError):
        Request(exchange()).target = target


def test_a_response_head_reads_the_servers_fields_on_first_use() -> None:
    resp = ResponseHead(200)
    resp._parts = [b"Server", b": ", b"x", b"\r\n"]
    assert resp.headers.get("server") == "x" and ResponseHead(503).headers.get("server") is None


def test_a_filter_may_not_grow_a_head_past_max_fields() -> None:
    from steelyard.filters import MAX_FIELDS

    headers = Headers()
    for i in range(MAX_FIELDS):
        headers.add(f"X-{i}", "v")
    with pytest.raises(ValueError, match="at most"):
        headers.add("X-More", "v")
    with pytest.raises(ValueError, match="at most"):
        headers.set("X-New", "v")
    headers.set("X-0", "replaced")  # (replacing adds no field)
    assert len(headers) == MAX_FIELDS


@pytest.mark.parametrize("host", ["a b", "a/b", "", "a:port", "[::1"])
def test_a_request_host_set_by_a_filter_must_be_a_host(host: str) -> None:
    req = Request(exchange())
    with pytest.raises(ValueError, match="Host"):
        req.headers.set("Host", host)
    req.headers.set("Host", "example.test:8080")
    req.headers.set("host", "[::1]:81")


def test_a_response_heads_status_is_read_only() -> None:
    with pytest.raises(AttributeError):
        ResponseHead(200).status = 500  # type: ignore[misc]


def test_the_filter_base_keeps_options_and_defines_no_phase() -> None:
    f = Filter({"a": 1})
    assert f.options == {"a": 1}
    assert not any(
        hasattr(Filter, p) for p in ("request_filter", "upstream_request_filter", "response_filter", "logging")
    )
