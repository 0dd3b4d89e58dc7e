"""steelyard.proxy.http.headers: header classification (and its bounded caches), Connection
tokens, chunk framing and the status line cache."""

import pytest

from steelyard.proxy.http import headers as H


@pytest.fixture(autouse=True)
def restore_caches():
    """The caches are module-wide and the parsers hold bound ``.get`` methods of these very
    dicts: restore their contents in place after each test."""
    saved = [(d, dict(d)) for d in (H.REQUEST_CODES, H.RESPONSE_CODES, H.STATUS_LINES)]
    yield
    for d, items in saved:
        d.clear()
        d.update(items)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (b"Host", H.HOST),
        (b"Connection", H.CONNECTION),
        (b"Keep-Alive", H.DROP),
        (b"TE", H.DROP),
        (b"Trailer", H.DROP),
        (b"Upgrade", H.UPGRADE),
        (b"Transfer-Encoding", H.TRANSFER_ENCODING),
        (b"Content-Length", H.CONTENT_LENGTH),
        (b"X-Forwarded-For", H.XFF),
        (b"X-Forwarded-Proto", H.DROP),
        (b"X-Forwarded-Host", H.DROP),
        (b"Proxy-Connection", H.PROXY_CONNECTION),
        (b"Proxy-Authorization", H.DROP),
        (b"proxy-anything", H.DROP),
        (b"Accept", H.ORDINARY),
        (b"X-Proxy-Id", H.ORDINARY),  # "proxy-" only as a prefix
        (b"Cookie", H.ORDINARY),
    ],
)
def test_request_code(name, code):
    assert H.request_code(name) == code
    assert H.request_code(name.upper()) == code
    assert H.request_code(name.lower()) == code
    assert H.REQUEST_CODES[name] == code  # remembered as received


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (b"Connection", H.CONNECTION),
        (b"Keep-Alive", H.DROP),
        (b"TE", H.DROP),
        (b"Trailer", H.DROP),
        (b"Upgrade", H.UPGRADE),
        (b"Transfer-Encoding", H.TRANSFER_ENCODING),
        (b"Content-Length", H.CONTENT_LENGTH),
        (b"Host", H.ORDINARY),
        (b"X-Forwarded-For", H.ORDINARY),
        (b"Content-Type", H.ORDINARY),
        (b"Set-Cookie", H.ORDINARY),
        (b"Proxy-Authenticate", H.DROP),
        (b"Proxy-Connection", H.DROP),
    ],
)
def test_response_code(name, code):
    assert H.response_code(name) == code
    assert H.response_code(name.swapcase()) == code
    assert H.RESPONSE_CODES[name] == code


@pytest.mark.parametrize(
    ("classify", "cache"), [(H.request_code, H.REQUEST_CODES), (H.response_code, H.RESPONSE_CODES)]
)
def test_caches_are_bounded_and_classification_stays_right_past_the_bound(classify, cache):
    long_name = b"X-" + b"a" * H.NAME_MAX
    assert classify(long_name) == H.ORDINARY
    assert long_name not in cache  # too long to keep
    for i in range(H.CODES_MAX + 10):
        classify(b"X-Filler-%d" % i)
    assert len(cache) == H.CODES_MAX
    # names first seen past the bound are not kept, and still classified right
    for name in (b"cOnNeCtIoN", b"CONTENT-LENGTH", b"TRANSFER-encoding", b"X-Late"):
        assert name not in cache
        assert classify(name) == classify(name.lower())
    assert classify(b"cOnNeCtIoN") == H.CONNECTION
    assert classify(b"X-Late") == H.ORDINARY
    assert len(cache) == H.CODES_MAX


def test_request_cache_past_the_bound_still_drops_proxy_headers():
    for i in range(H.CODES_MAX):
        H.request_code(b"X-Filler-%d" % i)
    assert H.request_code(b"PROXY-AUTHORIZATION") == H.DROP
    assert b"PROXY-AUTHORIZATION" not in H.REQUEST_CODES


def test_connection_tokens():
    assert H.connection_tokens(b"close") == [b"close"]
    assert H.connection_tokens(b" Keep-Alive ,X-Foo,, x-BAR ,") == [b"keep-alive", b"x-foo", b"x-bar"]
    assert H.connection_tokens(b"") == []


def test_strip_listed_removes_named_headers_case_insensitively_and_keeps_order():
    parts = [
        b"Accept", b": ", b"*/*", b"\r\n",
        b"X-Secret", b": ", b"1", b"\r\n",
        b"Host", b": ", b"h", b"\r\n",
        b"x-secret", b": ", b"2", b"\r\n",
        b"X-Other", b": ", b"3", b"\r\n",
    ]  # fmt: skip
    out = H.strip_listed(parts, {b"x-secret", b"x-absent"})
    assert b"".join(out) == b"Accept: */*\r\nHost: h\r\nX-Other: 3\r\n"
    assert H.strip_listed(parts, set()) == parts


def test_chunk_framing():
    assert H.chunk(b"hello") == b"5\r\nhello\r\n"
    assert H.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert H.LAST_CHUNK == b"0\r\n\r\n"


def test_status_line_is_built_and_cached_per_status():
    assert H.status_line(200, b"OK") == b"HTTP/1.1 200 OK\r\n"
    assert H.STATUS_LINES[200] == (b"OK", b"HTTP/1.1 200 OK\r\n")
    assert H.status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert H.STATUS_LINES[200] == (b"Fine", b"HTTP/1.1 200 Fine\r\n")  # the last reason sent
    assert H.status_line(599, b"") == b"HTTP/1.1 599 \r\n"


def test_status_line_does_not_keep_long_reasons():
    H.STATUS_LINES.pop(418, None)
    reason = b"r" * (H.NAME_MAX + 1)
    assert H.status_line(418, reason) == b"HTTP/1.1 418 " + reason + b"\r\n"
    assert 418 not in H.STATUS_LINES
