"""Canned responses the proxy writes itself (errors a user can read)."""

from __future__ import annotations

from httptools import HttpParserError


class Closed(HttpParserError):
    """Raised from a parser callback once its connection is closing: stops the parser."""


_REASONS = {
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

_DETAILS = {
    400: "steelyard: the request could not be parsed.",
    405: "steelyard: this method is not supported here.",
    408: "steelyard: the request did not arrive in time.",
    308: "steelyard: this listener serves https only.",
    413: "steelyard: the request body is too large.",
    414: "steelyard: the request target is too long.",
    429: "steelyard: too many requests; try again later.",
    431: "steelyard: the request head is too large, or has too many header fields.",
    500: "steelyard: internal error while handling the request.",
    501: "steelyard: this transfer coding is not supported (only chunked).",
    502: "steelyard: the upstream server refused, reset or broke the connection.",
    503: "steelyard: no server is available in this pool.",
    504: "steelyard: the upstream server did not answer in time.",
    505: "steelyard: only HTTP/1.0 and HTTP/1.1 are supported.",
}


def reason(status: int) -> bytes:
    return _REASONS.get(status, "Error").encode()


def error_response(status: int, *, close: bool, detail: str | None = None, extra: bytes = b"") -> bytes:
    """A complete HTTP/1.1 response with a short plain-text body explaining ``status``;
    ``extra`` is more header lines (each ending in CRLF)."""
    body = ((detail or _DETAILS.get(status) or reason(status).decode()) + "\n").encode()
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status)),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n" if close else b"",
            extra,
            b"\r\n",
            body,
        )
    )


def head_only(response: bytes) -> bytes:
    """``response`` without its body: the answer to a HEAD request (RFC 9110 section 9.3.2;
    on a kept connection a body would be read as the next response)."""
    return response[: response.index(b"\r\n\r\n") + 4]


# Pre-built copies for the common cases, so the error path allocates nothing.
CANNED = {(s, c): error_response(s, close=c) for s in _REASONS for c in (False, True)}

# Every server is at its max_conns and the pool's queue is full, or the request waited
# out queue_timeout: the client may try again shortly (RFC 9110 section 10.2.3).
BUSY = {
    c: error_response(
        503, close=c, extra=b"Retry-After: 1\r\n", detail="steelyard: every server is busy; try again shortly."
    )
    for c in (False, True)
}
