"""Header fields as filters see them (``steelyard.filters`` re-exports what is public here):
``Headers``, and the rules a change must pass before the proxy writes it into a head.

The proxy keeps a head's fields as a flat list ``[name, b": ", value, b"\\r\\n", ...]``;
``from_parts`` and ``to_parts`` convert, and a ``Headers`` is built from it on first use only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from .proxy.http.headers import REQUEST_SPECIAL, RESPONSE_SPECIAL

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # (a field value may hold tabs, never CR, LF or NUL)
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")  # (as the guard's)
MAX_FIELDS = 1000  # header fields a filter may bring a head to (a client's request: max_header_count)
RESPONSE_MANAGED = frozenset(name.decode() for name in RESPONSE_SPECIAL)
REQUEST_MANAGED = frozenset(name.decode() for name in REQUEST_SPECIAL) - {"host", "x-forwarded-for"}


class Headers:
    """An ordered list of header fields, names compared without case.

    ``get(name, default)`` the first value; ``get_all(name)`` every value; ``set(name, value)``
    replaces every field of that name (in the place of the first); ``add(name, value)`` appends
    one; ``remove(name)`` removes every one (none: no error). ``name in headers``,
    ``len(headers)``, and iterating gives ``(name, value)`` pairs in order. Names and values are
    ``str``; a value with CR, LF or NUL, or a name that is not an HTTP token, raises ``ValueError``,
    as do adding a second Host to a request (a server could read either one), a Host value that
    is not a host[:port], and adding a field past ``MAX_FIELDS``.
    """

    __slots__ = ("_pairs", "_managed", "changed")

    def __init__(
        self, fields: Iterable[tuple[str, str]] | Mapping[str, str] = (), *, managed: frozenset[str] = RESPONSE_MANAGED
    ) -> None:
        self._managed = managed
        self._pairs: list[tuple[str, str]] = []
        self.changed = False  # (the proxy writes a changed set back into the request or response)
        for name, value in fields.items() if isinstance(fields, Mapping) else fields:
            self.add(name, value)
        self.changed = False

    @classmethod
    def _of(cls, pairs: list[tuple[str, str]], managed: frozenset[str]) -> Headers:
        """Fields as received (trusted: not validated again)."""
        headers = cls.__new__(cls)
        headers._pairs, headers._managed, headers.changed = pairs, managed, False
        return headers

    def _check(self, name: str, value: str) -> None:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"not a header name: {name!r}")
        lname = name.lower()
        if lname in self._managed or lname.startswith("proxy-"):
            raise ValueError(f"{name} is the proxy's to set (framing and hop-by-hop headers)")
        if not isinstance(value, str):
            raise TypeError(f"a header value is a str; got {type(value).__name__}")
        if _BAD_VALUE.search(value) or not value.isascii() and not _latin1(value):
            raise ValueError(f"header {name}: value {value!r} has CR, LF, NUL or characters outside Latin-1")
        if lname == "host" and self._managed is REQUEST_MANAGED and not _HOST.fullmatch(value):
            raise ValueError(f"Host: {value!r} is not a host name or address with an optional port")

    def _room(self) -> None:
        if len(self._pairs) >= MAX_FIELDS:
            raise ValueError(f"a head holds at most {MAX_FIELDS} header fields")

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for n, v in self._pairs:
            if n.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self._pairs if n.lower() == lname]

    def set(self, name: str, value: str) -> None:
        self._check(name, value)
        lname, pairs = name.lower(), self._pairs
        if lname not in self:
            self._room()
        at = next((i for i, (n, _) in enumerate(pairs) if n.lower() == lname), None)
        self.remove(name)
        pairs.insert(len(pairs) if at is None else at, (name, value))
        self.changed = True

    def add(self, name: str, value: str) -> None:
        self._check(name, value)
        if self._managed is REQUEST_MANAGED and name.lower() == "host" and "host" in self:
            raise ValueError("a request has one Host header: set it, not add a second")
        self._room()
        self._pairs.append((name, value))
        self.changed = True

    def remove(self, name: str) -> None:
        lname = name.lower()
        kept = [(n, v) for n, v in self._pairs if n.lower() != lname]
        if len(kept) != len(self._pairs):
            self._pairs[:] = kept
            self.changed = True

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def from_parts(parts: list[bytes]) -> list[tuple[str, str]]:
    """The proxy's flat ``[name, b": ", value, b"\\r\\n", ...]`` list as (name, value) pairs."""
    return [(parts[i].decode("latin-1"), parts[i + 2].decode("latin-1")) for i in range(0, len(parts) - 3, 4)]


def to_parts(pairs: Iterable[tuple[str, str]]) -> list[bytes]:
    out: list[bytes] = []
    for name, value in pairs:
        out += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    return out
