"""The server name a TLS client asks for, read from its ClientHello without decrypting anything
(RFC 8446 §4.1.2 and RFC 6066 §3), so a TCP listener can route by name and pass the bytes on.

``client_hello_name(data)`` returns the name (lower-cased), ``None`` when the bytes are not a
TLS ClientHello or carry no server_name, or ``MORE`` when the ClientHello is not complete yet.
The handshake message may span several TLS records; at most ``LIMIT`` bytes are looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

MORE = "<more>"  # (not a host name: it has no dot and angle brackets)
LIMIT = 16 * 1024 + 5 * 4  # one maximal record's payload, and a few record headers
HANDSHAKE, CLIENT_HELLO, SERVER_NAME, HOST_NAME = 0x16, 0x01, 0x0000, 0x00


def _handshake(data: bytes) -> bytes | str | None:
    """The ClientHello's body, joined from its records; MORE or None as above."""
    body, i = b"", 0
    need = -1
    while need < 0 or len(body) < need:
        if len(data) < i + 5:
            return MORE if len(data) < LIMIT else None
        if data[i] != HANDSHAKE or data[i + 1] != 3:
            return None
        size = int.from_bytes(data[i + 3 : i + 5], "big")
        if len(data) < i + 5 + size:
            return MORE if len(data) < LIMIT else None
        body += data[i + 5 : i + 5 + size]
        i += 5 + size
        if need < 0 and len(body) >= 4:
            if body[0] != CLIENT_HELLO:
                return None
            need = 4 + int.from_bytes(body[1:4], "big")
    return body[4:need]


def client_hello_name(data: bytes) -> str | None:
    found = _handshake(data)
    if found is None or found is MORE:
        return found  # (None, or MORE: a str sentinel the caller compares)
    hello: bytes = found  # type: ignore[assignment]
    try:
        i = 2 + 32  # client_version, random
        i += 1 + hello[i]  # session_id
        i += 2 + int.from_bytes(hello[i : i + 2], "big")  # cipher_suites
        i += 1 + hello[i]  # compression_methods
        end = i + 2 + int.from_bytes(hello[i : i + 2], "big")
        i += 2
        while i + 4 <= end:
            kind, size = int.from_bytes(hello[i : i + 2], "big"), int.from_bytes(hello[i + 2 : i + 4], "big")
            ext = hello[i + 4 : i + 4 + size]
            if kind == SERVER_NAME:
                j = 2  # (the server_name_list's length)
                while j + 3 <= len(ext):
                    name_type, length = ext[j], int.from_bytes(ext[j + 1 : j + 3], "big")
                    if name_type == HOST_NAME:
                        return ext[j + 3 : j + 3 + length].decode("ascii").lower().rstrip(".")
                    j += 3 + length
                return None
            i += 4 + size
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def route(name: str | None, routes: Sequence[tuple[str, T]], default: T) -> T:
    """The target for ``name``: an exact route, then ``*.parent`` (one label), else ``default``."""
    if name:
        for pattern, target in routes:
            if pattern == name:
                return target
        _, dot, parent = name.partition(".")
        if dot:
            for pattern, target in routes:
                if pattern == "*." + parent:
                    return target
    return default
