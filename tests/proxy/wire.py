"""The bytes scripted exchanges send and expect (``script.py`` drives them): requests as a client
writes them, the same requests as a server gets them from steelyard, and the error responses
steelyard writes itself. Written out literally, so that a scripted test pins what crosses the
wire, not what some class of the day builds."""

from __future__ import annotations

PEER = b"192.0.2.7"  # the scripts' client address (``Script.client``'s default)

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def get(path: bytes, version: bytes = b"1.1", *headers: bytes) -> bytes:
    """A GET for ``path`` with Host ``a`` and ``headers`` (each a line without its CRLF)."""
    return b"GET %b HTTP/%b\r\nHost: a\r\n%b\r\n" % (path, version, b"".join(h + b"\r\n" for h in headers))


def ok(body: bytes, *headers: bytes) -> bytes:
    """A 200 with a Content-Length body, as a server (or steelyard, forwarding it) writes it."""
    lines = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), lines, body)


def forwarded(head: bytes, *framing: bytes, host: bytes = b"a") -> bytes:
    """The request whose request line and headers are ``head`` (each line ending in CRLF, no
    blank line; hop-by-hop and framing headers left out) as a server gets it: steelyard's
    forwarding headers, then the ``framing`` lines (Content-Length, Transfer-Encoding,
    Connection/Upgrade), then the blank line."""
    block = b"X-Forwarded-Host: %b\r\nX-Forwarded-For: %b\r\nX-Forwarded-Proto: http\r\n" % (host, PEER)
    return head + block + b"".join(f + b"\r\n" for f in framing) + b"\r\n"


FORWARDED_GET = forwarded(b"GET / HTTP/1.1\r\nHost: a\r\n")

_ERRORS = {
    400: (b"Bad Request", b"steelyard: the request could not be parsed."),
    408: (b"Request Timeout", b"steelyard: the request did not arrive in time."),
    502: (b"Bad Gateway", b"steelyard: the upstream server refused, reset or broke the connection."),
    503: (b"Service Unavailable", b"steelyard: no server is available in this pool."),
    504: (b"Gateway Timeout", b"steelyard: the upstream server did not answer in time."),
}


def error(status: int, *, close: bool = False) -> bytes:
    """The error response steelyard writes itself for ``status`` (``close``: it ends the connection)."""
    reason, detail = _ERRORS[status]
    return _plain(b"%d %b" % (status, reason), detail, close)


def busy(*, close: bool = False) -> bytes:
    """503 when every server is at its max_conns and the queue is full, or the wait was too long."""
    detail = b"steelyard: every server is busy; try again shortly."
    return _plain(b"503 Service Unavailable", detail, close, b"Retry-After: 1\r\n")


def _plain(status_line: bytes, detail: bytes, close: bool, extra: bytes = b"") -> bytes:
    body = detail + b"\n"
    connection = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 %b\r\nContent-Type: text/plain; charset=utf-8\r\n" % status_line
    return head + b"Content-Length: %d\r\n" % len(body) + connection + extra + b"\r\n" + body
