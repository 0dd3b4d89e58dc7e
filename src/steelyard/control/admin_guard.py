"""What the admin API checks before a write (``POST``, ``PATCH``, ``DELETE``, ``PUT``) runs.

An admin API on loopback without a token is reachable from any web page the operator's browser
opens: a cross-site form or ``fetch`` can send it a write (the browser needs no answer to do
harm), and a page whose DNS name is rebound to 127.0.0.1 even reads answers. So a write is
refused (403, or 415 for the body's type) when:
- it carries an ``Origin`` that is not the admin API's own (browsers send one on every
  cross-site write; ``steelyard ctl`` and curl send none);
- its ``Host`` is a name other than a loopback name or the name the admin API is bound to
  (IP literals are fine: rebinding needs a name). With a token configured this check is off:
  a rebound page cannot know the token;
- it has a body (or a Content-Type) that is not ``application/json`` (an HTML form cannot send
  JSON without a CORS preflight, which this API never grants).

Bodies are read up to ``MAX_BODY`` bytes (413 past it, counted as they arrive, so a chunked
body is cut off too) and JSON nested deeper than ``MAX_DEPTH`` is refused (400) before it is
looked at.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

MAX_BODY = 64 * 1024  # a write's JSON body (the largest real one is a few hundred bytes)
MAX_DEPTH = 32  # arrays and objects nested in a body
LOOPBACK_NAMES = frozenset(("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"))


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _split_host(value: str) -> str:
    """The host of a ``Host`` value or an origin's authority, without port or brackets, lower-cased."""
    if value.startswith("["):
        return value[1:].partition("]")[0].lower()
    return value.rpartition(":")[0].lower() if value.count(":") == 1 else value.lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_write(headers: dict[bytes, bytes], bound_host: str, token_set: bool) -> None:
    """Raise ``Refusal`` when a write with these request headers must not run (module docstring)."""
    host_value = headers.get(b"host", b"").decode("latin-1").strip()
    origin = headers.get(b"origin")
    if origin is not None:
        scheme, sep, authority = origin.decode("latin-1").strip().partition("://")
        if not sep or scheme.lower() not in ("http", "https") or authority.lower() != host_value.lower():
            raise Refusal(403, f"cross-origin write refused (Origin {origin.decode('latin-1')!r})")
    if not token_set:
        host = _split_host(host_value)
        allowed = _is_ip(host) or host in LOOPBACK_NAMES or host.endswith(".localhost") or host == bound_host.lower()
        if not allowed:
            raise Refusal(
                403,
                f"write refused: Host {host_value!r} is not this admin API's address "
                "(use its IP address, localhost, or configure a token)",
            )
    ctype = headers.get(b"content-type")
    has_body = headers.get(b"content-length", b"0").strip() not in (b"0", b"") or b"transfer-encoding" in headers
    if ctype is not None or has_body:
        media = (ctype or b"").split(b";")[0].strip().lower()
        if media != b"application/json":
            raise Refusal(415, "a write's body must be JSON (Content-Type: application/json)")
    length = headers.get(b"content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
        raise Refusal(413, f"the body is larger than {MAX_BODY // 1024} KiB")


async def read_json(stream: Any) -> Any:
    """The JSON body of a write (``{}`` when empty), read from ``stream`` (Starlette's
    ``request.stream()``) up to ``MAX_BODY`` bytes; ``Refusal`` for too large, not JSON, too deep."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_BODY:
            raise Refusal(413, f"the body is larger than {MAX_BODY // 1024} KiB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    if _depth(raw) > MAX_DEPTH:
        raise Refusal(400, f"the body is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Refusal(400, f"the body is not JSON: {exc}") from None


def _depth(raw: bytes) -> int:
    """How deep brackets nest in ``raw``, outside strings (checked before parsing, so the
    parser never recurses deeply)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
