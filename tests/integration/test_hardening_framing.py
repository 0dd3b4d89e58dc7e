"""Malformed and ambiguous requests: each is refused with its status, the connection is closed,
not one byte reaches the server, and the balancer's descriptors return to their count.

One balancer for the module (the cases are independent connections). The pool keeps no idle
server connections (``max_idle = 0``): a request is only ever written on a connection opened
for it, so "nothing reached the server" is observable as "no server connection received a byte".
"""

from __future__ import annotations

import textwrap

import pytest

from .conftest import Balancer, address_config
from .hardening import exchange, fd_count, recording_handler, status_of, wait_fds
from .inline import InlineServer
from .rawhttp import RawConnection

POST = b"POST / HTTP/1.1\r\nHost: a\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

CASES = {
    # -- framing: Content-Length / Transfer-Encoding (request smuggling vectors) --
    "cl-and-te": (POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "cl-twice-different": (POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    "cl-twice-same": (POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400),
    "cl-negative": (POST + b"Content-Length: -1\r\n\r\n", 400),
    "cl-plus-sign": (POST + b"Content-Length: +1\r\n\r\na", 400),
    "cl-hex": (POST + b"Content-Length: 0x1\r\n\r\na", 400),
    "cl-list": (POST + b"Content-Length: 1, 1\r\n\r\na", 400),
    "cl-empty": (POST + b"Content-Length: \r\n\r\n", 400),
    "cl-overflow": (POST + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    "te-gzip": (POST + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    "te-chunked-not-last": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "te-chunked-twice": (POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    "te-two-fields": (POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-unknown-token": (POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    "te-in-http10": (b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-coding-before-chunked": (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "te-vertical-tab": (POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    # -- chunked bodies --
    "chunk-size-not-hex": (CHUNKED + b"zz\r\nab\r\n0\r\n\r\n", 400),
    "chunk-size-negative": (CHUNKED + b"-1\r\nab\r\n0\r\n\r\n", 400),
    "chunk-size-0x": (CHUNKED + b"0x2\r\nab\r\n0\r\n\r\n", 400),
    "chunk-size-overflow": (CHUNKED + b"fffffffffffffffffff\r\nab\r\n0\r\n\r\n", 400),
    "chunk-size-space": (CHUNKED + b"2 \r\nab\r\n0\r\n\r\n", 400),
    "chunk-ext-control-char": (CHUNKED + b"2;a\x01\r\nab\r\n0\r\n\r\n", 400),
    "chunk-ext-bare-lf": (CHUNKED + b"2;a\nab\r\n0\r\n\r\n", 400),
    "chunk-data-too-long": (CHUNKED + b"2\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-bare-lf": (CHUNKED + b"2\nab\n0\n\n", 400),
    # -- header syntax --
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "space-in-name": (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400),
    "control-char-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    "del-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
    "bare-cr-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    "bare-lf-line-ends": (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    "control-char-in-name": (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: b\r\n\r\n", 400),
    "empty-name": (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
    "no-colon": (b"GET / HTTP/1.1\r\nHost: a\r\nXa\r\n\r\n", 400),
    "space-before-first-header": (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    "non-ascii-name": (b"GET / HTTP/1.1\r\nHost: a\r\nX\xe9: b\r\n\r\n", 400),
    # -- Host --
    "host-twice": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "host-missing-http11": (b"GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    "host-missing-absolute-form": (b"GET http://a/ HTTP/1.1\r\nX: a\r\n\r\n", 400),
    "host-with-space": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "host-with-slash": (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    "host-with-at": (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400),
    # -- request line: method, target, version --
    "method-bad-char": (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "method-unknown": (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "method-lower-case": (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-with-space": (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-control-char": (b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-non-ascii": (b"GET /a\xffb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-fragment": (b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-relative": (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-asterisk-not-options": (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "target-foreign-scheme": (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "connect-method": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    "version-1.2": (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
    "version-2.0": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "version-junk": (b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
    "http09-request-line": (b"GET /\r\n\r\n", 505),
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    server = InlineServer(recording_handler)
    path = tmp_path_factory.mktemp("framing") / "steelyard.toml"
    path.write_text(textwrap.dedent(address_config(server.port, "max_idle = 0")))
    bal = Balancer(path)
    try:
        bal.base_fds = fd_count(bal.pid())  # listening: the count every test returns to
        with RawConnection(bal.port) as c:  # the setup works: a good request reaches the server
            c.send(b"GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert c.response()[0] == 200
        assert server.wait_done(0)
        seen_before = len(server.seen)
        assert seen_before == 1
        yield bal, server, seen_before
    finally:
        bal.kill()
        server.close()


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_is_refused_and_nothing_reaches_the_server(proxy, name):
    bal, server, seen_before = proxy
    data, status = CASES[name]
    answer, how = exchange(bal.port, data)
    assert status_of(answer) == status, answer[:200]
    assert b"Connection: close" in answer
    with server.lock:
        assert len(server.seen) == seen_before, f"the server got {server.seen[seen_before:]!r}"
    assert wait_fds(bal.pid(), bal.base_fds) <= bal.base_fds
    assert bal.proc.poll() is None


def test_pipelined_smuggling_attempt_is_refused_after_the_first_answer(proxy):
    """A valid request, then a CL.TE smuggling attempt on the same connection: the first is
    answered, the second refused; the server sees exactly the first one."""
    bal, server, _ = proxy
    good = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
    evil = POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
    with server.lock:
        before = len(server.seen)
    answer, _ = exchange(bal.port, good + evil)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in answer
    assert server.wait_done(server.accepted - 1)
    with server.lock:
        new = [head for _, head, _ in server.seen[before:]]
    assert len(new) == 1 and new[0].startswith(b"GET /first ") and b"POST" not in new[0]


def test_forwarded_request_is_canonical(proxy):
    """What the server parses is what steelyard parsed: one framing header, Content-Length in
    canonical form, the body exactly as counted."""
    bal, server, _ = proxy
    with server.lock:
        before = len(server.seen)
    answer, _ = exchange(bal.port, POST + b"content-length: 003\r\nConnection: close\r\n\r\nabc")
    assert status_of(answer) == 200
    assert server.wait_done(server.accepted - 1)
    with server.lock:
        (got,) = [head for _, head, _ in server.seen[before:]]
    head, _, body = got.partition(b"\r\n\r\n")
    assert body == b"abc"
    assert head.lower().count(b"content-length") == 1 and b"\r\nContent-Length: 3\r\n" in head + b"\r\n"
