"""steelyard.control.admin_guard: which writes the admin API refuses before running them."""

from __future__ import annotations

import asyncio

import pytest

from steelyard.control.admin_guard import MAX_BODY, MAX_DEPTH, Refusal, check_write, read_json

JSON = {b"content-type": b"application/json", b"content-length": b"2"}


def refused(headers: dict[bytes, bytes], bound: str = "127.0.0.1", token: bool = False) -> int:
    try:
        check_write(headers, bound, token)
    except Refusal as r:
        return r.status
    return 0


@pytest.mark.parametrize(
    "host",
    [b"127.0.0.1:9000", b"[::1]:9000", b"localhost:9000", b"LOCALHOST", b"app.localhost:1", b"10.1.2.3:9000"],
)
def test_ip_literals_and_loopback_names_may_write(host):
    assert refused({**JSON, b"host": host}) == 0


def test_a_rebound_name_may_not_write_unless_a_token_guards_the_api():
    headers = {**JSON, b"host": b"evil.example:9000"}
    assert refused(headers) == 403
    assert refused(headers, token=True) == 0
    assert refused({**JSON, b"host": b"admin.internal:9000"}, bound="admin.internal") == 0


def test_an_origin_must_be_the_apis_own():
    own = {**JSON, b"host": b"127.0.0.1:9000"}
    assert refused({**own, b"origin": b"http://127.0.0.1:9000"}) == 0
    assert refused({**own, b"origin": b"http://127.0.0.1:9001"}) == 403
    assert refused({**own, b"origin": b"null"}) == 403
    assert refused({**own, b"origin": b"http://evil.example"}, token=True) == 403


def test_a_body_must_be_json_and_small():
    host = {b"host": b"127.0.0.1:9000"}
    assert refused({**host, b"content-type": b"text/plain", b"content-length": b"2"}) == 415
    assert refused({**host, b"content-length": b"2"}) == 415
    assert refused({**host, b"transfer-encoding": b"chunked"}) == 415
    assert refused({**host, b"content-type": b"application/json; charset=utf-8", b"content-length": b"2"}) == 0
    assert refused({**host}) == 0  # (a DELETE: no body at all)
    assert refused({**host, **JSON, b"content-length": str(MAX_BODY + 1).encode()}) == 413


async def _stream(*chunks: bytes):
    for c in chunks:
        yield c


def read(*chunks: bytes):
    return asyncio.run(read_json(_stream(*chunks)))


def test_bodies_are_read_up_to_the_limit_and_nesting_is_bounded():
    assert read(b'{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}
    assert read(b"") == {}
    assert read(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(Refusal) as deep:
        read(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert deep.value.status == 400
    with pytest.raises(Refusal) as big:
        read(*([b" " * 4096] * (MAX_BODY // 4096 + 1)))
    assert big.value.status == 413
    with pytest.raises(Refusal) as bad:
        read(b"{not json")
    assert bad.value.status == 400
