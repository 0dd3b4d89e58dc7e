"""steelyard.proxy.http.exchange: the request head sent upstream, absolute-form targets,
hash keys and replayability (its lease: ``test_lease``)."""

import pytest

from steelyard.core.model import Server
from steelyard.proxy.http import headers as H
from steelyard.proxy.http.exchange import Exchange

SERVER = Server("s1", "10.0.0.9", 8080)
FORWARDED = b"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"  # the connection's prebuilt block


def request(method=b"GET", url=b"/", headers=()):
    """An Exchange as the downstream parser fills it (``DownstreamProtocol.on_header``)."""
    ex = Exchange(0.0)
    ex.method, ex.url = method, url
    for name, value in headers:
        ex.headers.append((name, value))
        code = H.request_code(name)
        if code == H.ORDINARY:
            ex.parts += (name, b": ", value, b"\r\n")
        elif code == H.HOST:
            ex.host = value
            ex.parts += (name, b": ", value, b"\r\n")
        else:
            ex.special_header(code, value)
    return ex


def head(ex, server=SERVER):
    ex.build_head(server, FORWARDED, b"192.0.2.7", b"http")
    return ex.head


def test_plain_get():
    ex = request(headers=[(b"Host", b"example.test"), (b"Accept", b"*/*"), (b"x-CASE", b"Kept")])
    assert head(ex) == (
        b"GET / HTTP/1.1\r\n"
        b"Host: example.test\r\nAccept: */*\r\nx-CASE: Kept\r\n"
        b"X-Forwarded-Host: example.test\r\n" + FORWARDED + b"\r\n"
    )


def test_hop_by_hop_and_forwarding_headers_are_replaced():
    ex = request(
        headers=[
            (b"Host", b"h"), (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"), (b"TE", b"trailers"),
            (b"Proxy-Authorization", b"Basic x"), (b"Proxy-Connection", b"keep-alive"), (b"Trailer", b"X"),
            (b"X-Forwarded-Proto", b"https"), (b"X-Forwarded-Host", b"spoofed"), (b"Upgrade", b"h2c"),
        ]
    )  # fmt: skip
    ex.upgrade = None  # (the parser clears an Upgrade without "Connection: upgrade")
    assert head(ex) == b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n" + FORWARDED + b"\r\n"


def test_x_forwarded_for_is_appended_to():
    ex = request(headers=[(b"Host", b"h"), (b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3")])
    assert head(ex) == (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n"
        b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n"
    )


def test_http10_without_host_gets_the_servers_address_and_no_forwarded_host():
    assert head(request(url=b"/x")) == b"GET /x HTTP/1.1\r\nHost: 10.0.0.9:8080\r\n" + FORWARDED + b"\r\n"
    v6 = Server("v6", "::1", 80)
    assert b"\r\nHost: [::1]:80\r\n" in head(request(), v6)


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ([(b"Content-Length", b"5")], b"Content-Length: 5\r\n"),
        ([(b"content-length", b"5"), (b"Content-Length", b"5")], b"Content-Length: 5\r\n"),
        ([(b"Transfer-Encoding", b"chunked")], b"Transfer-Encoding: chunked\r\n"),
        ([(b"transfer-encoding", b"Chunked")], b"Transfer-Encoding: chunked\r\n"),
    ],
)
def test_one_canonical_framing_header(framing, expected):
    ex = request(b"POST", headers=[(b"Host", b"h"), *framing])
    assert ex.refuse <= 0  # (CHECK: the guard looks at framing headers, nothing refused)
    assert head(ex) == b"POST / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: h\r\n" + FORWARDED + expected + b"\r\n"


def test_framing_conflicts_are_refused():
    assert request(b"POST", headers=[(b"Content-Length", b"5"), (b"Content-Length", b"6")]).refuse == 400
    assert request(b"POST", headers=[(b"Transfer-Encoding", b"gzip, chunked")]).refuse == 501


def test_connection_listed_headers_are_stripped_but_never_host():
    ex = request(
        headers=[(b"Host", b"h"), (b"X-Secret", b"1"), (b"Connection", b"X-Secret, HOST, close"), (b"x-secret", b"2"),
                 (b"X-Kept", b"3")]
    )  # fmt: skip
    assert head(ex) == b"GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 3\r\nX-Forwarded-Host: h\r\n" + FORWARDED + b"\r\n"


def test_every_connection_header_names_hop_by_hop_headers():
    ex = request(
        headers=[(b"Host", b"h"), (b"Connection", b"X-A"), (b"Connection", b"X-B"), (b"X-A", b"1"), (b"X-B", b"2")]
    )
    assert b"X-A" not in head(ex)
    assert b"X-B" not in ex.head


def test_upgrade_request_headers():
    ex = request(headers=[(b"Host", b"h"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"),
                          (b"Sec-WebSocket-Key", b"k")])  # fmt: skip
    assert head(ex) == (
        b"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nX-Forwarded-Host: h\r\n" + FORWARDED +
        b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "target", "authority"),
    [
        (b"http://example.test:8080/a/b?c=d", b"/a/b?c=d", b"example.test:8080"),
        (b"http://example.test", b"/", b"example.test"),
        (b"http://example.test?q=1", b"/?q=1", b"example.test"),
        (b"HTTPS://Example.Test/x", b"/x", b"Example.Test"),
        (b"http://[::1]:81/", b"/", b"[::1]:81"),
        (b"http://user:secret@example.test/x", b"/x", b"example.test"),
    ],
)
def test_to_origin_form(url, target, authority):
    ex = request(url=url, headers=[(b"HOST", b"ignored"), (b"Accept", b"*/*")])
    ex.to_origin_form()
    assert (ex.url, ex.host) == (target, authority)
    assert b"".join(ex.parts) == b"Accept: */*\r\nHost: " + authority + b"\r\n"
    assert head(ex).startswith(b"GET " + target + b" HTTP/1.1\r\nAccept: */*\r\nHost: " + authority + b"\r\n")


@pytest.mark.parametrize("url", [b"ftp://example.test/x", b"example.test:443", b"*", b"/already/origin"])
def test_to_origin_form_leaves_other_targets(url):
    ex = request(url=url, headers=[(b"Host", b"h")])
    ex.to_origin_form()
    assert (ex.url, ex.host, b"".join(ex.parts)) == (url, b"h", b"Host: h\r\n")


def test_to_origin_form_adds_host_for_a_request_without_one():
    ex = request(url=b"http://example.test/p")
    ex.to_origin_form()
    assert head(ex) == (
        b"GET /p HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: example.test\r\n" + FORWARDED + b"\r\n"
    )


def test_hash_key():
    ex = request(
        url=b"/p?q=1",
        headers=[(b"X-User", b"alice"), (b"x-user", b"bob"), (b"Cookie", b"theme=dark"),
                 (b"cookie", b"a=1;  sess=xyz=2 ; sessx=no"), (b"X-Bin", b"\xe9")],
    )  # fmt: skip
    assert ex.hash_key("uri", b"") == "/p?q=1"
    assert ex.hash_key("header", b"x-user") == "alice"  # the first one
    assert ex.hash_key("header", b"x-bin") == "\xe9"  # latin-1
    assert ex.hash_key("header", b"x-none") is None
    assert ex.hash_key("cookie", b"sess") == "xyz=2"
    assert ex.hash_key("cookie", b"theme") == "dark"
    assert ex.hash_key("cookie", b"Theme") is None  # cookie names are case-sensitive
    assert ex.hash_key("cookie", b"none") is None
    assert request().hash_key("cookie", b"sess") is None


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"])
def test_idempotent_methods_without_a_body_are_replayable(method):
    assert request(method).replayable
    assert request(method, headers=[(b"Content-Length", b"0")]).replayable
    assert not request(method, headers=[(b"Content-Length", b"3")]).replayable
    assert not request(method, headers=[(b"Transfer-Encoding", b"chunked")]).replayable


@pytest.mark.parametrize("method", [b"POST", b"PATCH", b"CONNECT", b"get"])
def test_other_methods_are_not_replayable(method):
    assert not request(method).replayable


def test_an_upgrade_is_not_replayable():
    assert not request(headers=[(b"Connection", b"upgrade"), (b"Upgrade", b"websocket")]).replayable
