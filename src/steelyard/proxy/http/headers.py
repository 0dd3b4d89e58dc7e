"""Header rules for both directions, as lookup tables the parsers' callbacks consult.

Every header name is classified by one dict lookup: ``REQUEST_CODES`` /
``RESPONSE_CODES`` remember the code of each name as received (any case), so the
common names cost neither a lower-casing nor a second lookup; a name not seen yet
is classified by ``request_code`` / ``response_code``. A name that is not special
(code ``ORDINARY``) is forwarded unchanged, in its original case and order.

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

from functools import partial

# codes for special request headers (ORDINARY: forwarded as it is)
ORDINARY = 0
HOST = 1
CONNECTION = 2
DROP = 3
UPGRADE = 4
TRANSFER_ENCODING = 5
CONTENT_LENGTH = 6
XFF = 7
PROXY_CONNECTION = 8  # dropped like every Proxy-* header, but llhttp reads it as Connection

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
    b"proxy-connection": PROXY_CONNECTION,
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

# Names as received -> code, filled by the classifiers below. Bounded (count and name
# length) because names come from the network: past the bound a name is classified
# afresh each time, which is correct, only slower.
REQUEST_CODES: dict[bytes, int] = {}
RESPONSE_CODES: dict[bytes, int] = {}
CODES_MAX, NAME_MAX = 512, 64


def _classify(special: dict[bytes, int], cache: dict[bytes, int], name: bytes) -> int:
    """The code of a header name not in ``cache`` yet (Proxy-* is hop-by-hop both ways)."""
    lname = name.lower()
    code = special.get(lname, ORDINARY)
    if code == ORDINARY and lname.startswith(b"proxy-"):
        code = DROP
    if len(cache) < CODES_MAX and len(name) <= NAME_MAX:
        cache[name] = code
    return code


request_code = partial(_classify, REQUEST_SPECIAL, REQUEST_CODES)
response_code = partial(_classify, RESPONSE_SPECIAL, RESPONSE_CODES)


# Connection tokens that name no header of their own worth a second filtering pass.
PLAIN_CONNECTION_TOKENS = frozenset((b"keep-alive", b"close", b"upgrade"))
# the usual spellings of a Connection value that is one of those (found without lower-casing it)
PLAIN_CONNECTION_VALUES = frozenset((b"keep-alive", b"close", b"upgrade", b"Keep-Alive", b"Close", b"Upgrade"))


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


# status -> (reason phrase, status line) for the last reason a server sent with that
# status: a server sends one reason per status, so the usual lookup hashes an int and
# compares a short phrase. At most 900 statuses (llhttp takes 100-999); long reasons
# (they come from the network) are not kept.
STATUS_LINES: dict[int, tuple[bytes, bytes]] = {}


def status_line(status: int, reason: bytes) -> bytes:
    line = b"HTTP/1.1 %d %b\r\n" % (status, reason)
    if len(reason) <= NAME_MAX:
        STATUS_LINES[status] = (reason, line)
    return line


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
