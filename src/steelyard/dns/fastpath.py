"""A cache of rendered answers, so the common query costs a dictionary lookup, not a parse.

A query takes the fast path when it is a plain one: QR clear, opcode QUERY, one question,
no answer or authority records, and either no additional record or exactly one OPT record
without options (EDNS cookies and client-subnet options vary per query: those go the slow
way). Its key is the question exactly as sent (case kept: the answer echoes it) plus the OPT
record and the transport. An entry holds every answer the zone gives that query in turn (the
rotations of a round-robin record) and the pool state they came from (the tuple of usable
servers' snapshot); when the pool publishes a new snapshot, the entry is rebuilt. Answers drawn at random
(weighted, p2c) are never cached. The cached wire has its ID and RD bit patched per query.
The cache is bounded: it is emptied when it reaches ``MAX_ENTRIES``.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_ENTRIES = 4096


class Entry:
    """The answers to one query key, served in turn while ``state`` (the pool's snapshot when the
    record answers from a pool, else None: never changes) is what the pool still publishes."""

    __slots__ = ("wires", "state", "turn", "stat", "name")

    def __init__(self, wires: list[bytes], stat: tuple, name: Any) -> None:
        self.wires, self.state, self.turn, self.stat, self.name = wires, None, 1, stat, name


def quick_key(data: bytes, tcp: bool) -> bytes | None:
    """The cache key of a plain query, or None when it is not one (the slow path decides)."""
    if len(data) < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None  # QR or an opcode set, or not exactly one question and no answers
    i = 12
    n = len(data)
    while i < n:  # the question's name: plain labels, no compression in a question
        length = data[i]
        if length == 0:
            break
        if length > 63:
            return None
        i += length + 1
    end = i + 5  # root byte, type, class
    if end > n:
        return None
    extra = data[10:12]
    if extra == b"\x00\x00":
        return data[12:end] + (b"T" if tcp else b"U") if end == n else None
    if extra != b"\x00\x01" or n != end + 11 or data[end] != 0 or data[end + 1 : end + 3] != b"\x00\x29":
        return None
    if data[end + 9 : end + 11] != b"\x00\x00":
        return None  # EDNS options (cookies, client subnet): vary per query
    return data[12:] + (b"T" if tcp else b"U")


def patch(wire: bytes, data: bytes) -> bytes:
    """``wire`` answered another query: give it this query's ID and RD bit."""
    flags = wire[2] & 0xFE | data[2] & 0x01
    return data[:2] + struct.pack("B", flags) + wire[3:]
