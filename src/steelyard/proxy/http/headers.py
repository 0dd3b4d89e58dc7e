"""Header rules for both directions, as lookup tables the parsers' callbacks consult.

Every header name is lower-cased once and looked up in one dict; a name that is
not special is forwarded unchanged, in its original case and order.

Request direction (client -> server):
- hop-by-hop headers are dropped: Connection (and every header it lists),
  Keep-Alive, Proxy-*, TE, Trailer, Upgrade (re-added only for an upgrade);
- the framing headers Content-Length / Transfer-Encoding are dropped and one
  canonical framing header is re-added for the body steelyard forwards;
- X-Forwarded-For is appended to, X-Forwarded-Proto and X-Forwarded-Host are set.

Response direction (server -> client): the same hop-by-hop set is dropped and the
framing header is re-added for the framing steelyard uses towards the client.
"""

from __future__ import annotations

# codes for special request headers
HOST = 1
CONNECTION = 2
DROP = 3
UPGRADE = 4
TRANSFER_ENCODING = 5
CONTENT_LENGTH = 6
XFF = 7

REQUEST_SPECIAL: dict[bytes, int] = {
    b"host": HOST,
    b"connection": CONNECTION,
    b"keep-alive": DROP,
    b"te": DROP,
    b"trailer": DROP,
    b"upgrade": UPGRADE,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"content-length": CONTENT_LENGTH,
    b"x-forwarded-for": XFF,
    b"x-forwarded-proto": DROP,
    b"x-forwarded-host": DROP,
}

RESPONSE_SPECIAL: dict[bytes, int] = {
    b"connection": CONNECTION,
    b"keep-alive": DROP,
    b"te": DROP,
    b"trailer": DROP,
    b"upgrade": UPGRADE,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"content-length": CONTENT_LENGTH,
}

# Connection tokens that name no header of their own worth a second filtering pass.
PLAIN_CONNECTION_TOKENS = frozenset((b"keep-alive", b"close", b"upgrade"))


def connection_tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def strip_listed(parts: list[bytes], tokens: set[bytes]) -> list[bytes]:
    """Remove headers named by the Connection header from a flat
    ``[name, b": ", value, b"\\r\\n", ...]`` list (RFC 9110 section 7.6.1)."""
    out: list[bytes] = []
    for i in range(0, len(parts), 4):
        if parts[i].lower() not in tokens:
            out.extend(parts[i : i + 4])
    return out


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
