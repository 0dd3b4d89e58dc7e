"""Session persistence on the request path: which server a sticky client goes to.

``Sticky.pick`` runs in place of the pool's plain pick for pools with ``[pool.sticky]``
(``PoolRuntime.pick`` checks one attribute; other pools pay nothing else). Rules:

- The client's server is looked up by name in the *current* snapshot's usable servers:
  a server that is down, ejected or removed is not there, whatever the cookie says.
- A draining server (``PoolRuntime.draining``: name -> (server, drain start)) keeps its sticky
  clients for ``drain_grace`` after its drain began; after that they move.
- A sticky server at its ``max_conns``, or one the request already failed on (a retry):
  without ``persist`` the client is redispatched (picked afresh and re-stuck, HAProxy's
  ``redispatch``); with ``persist`` the answer is ``FULL`` (the request waits for room) for a
  full server, and None (503) for a server that is gone. New clients never stick to a full
  server: the plain pick already skips full ones (the overload guard).
- Cookie mode: the sticky cookie is removed from the Cookie header the server gets (other
  cookies in it pass unchanged), and ``ex.set_cookie`` is set to a ``Set-Cookie`` header
  line when the server was (re)chosen or the cookie needs refreshing; the response head
  carries it. A cookie the codec rejects (forged, stale, another secret) counts as none.
- Source mode: the stick table maps the client address to a server name; it is written
  whenever a server is chosen for the address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from ..core.sticky import CookieCodec, StickTable

if TYPE_CHECKING:
    from ..core.model import Server
    from .pool import PoolRuntime


class Sticky:
    __slots__ = (
        "cfg",
        "cookie",
        "name",
        "codec",
        "table",
        "clock",
        "wall",
        "attrs",
        "_snap",
        "_by_id",
        "_by_name",
        "_known",
        "FULL",
    )

    def __init__(
        self,
        cfg: Any,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
        secure: bool = False,
        full: Any = None,
        secret: bytes | None = None,
    ) -> None:
        self.cfg = cfg
        self.cookie = cfg.mode == "cookie"
        self.name = cfg.cookie.encode()
        self.clock = clock  # the loop's clock: drain grace
        self.wall = wall  # cookie times survive restarts: wall clock
        self.FULL = full
        self.codec: CookieCodec | None = None
        self.table: StickTable | None = None
        if self.cookie:
            # (no secret configured: one drawn here, or given: every worker process signs alike)
            secret = cfg.secret.encode() if cfg.secret else secret or os.urandom(32)
            self.codec = CookieCodec(secret, clock=wall, max_age=cfg.max_age or 0.0, idle=cfg.idle or 0.0)
            attrs = "; Path=/; HttpOnly; SameSite=Lax"
            if cfg.max_age:
                attrs += f"; Max-Age={int(cfg.max_age)}"
            if secure:
                attrs += "; Secure"
            self.attrs = attrs.encode()
        else:
            self.table = StickTable(cfg.table_size, cfg.idle or cfg.expire, clock=clock)
            self.attrs = b""
        self._snap: Any = None  # the snapshot the maps below were built for
        self._by_id: dict[bytes, Server] = {}
        self._by_name: dict[str, Server] = {}
        self._known: set[bytes] = set()  # ids of every server the pool ever had (persist: 503 for those)

    def _maps(self, pool: PoolRuntime) -> None:
        snap = pool.snapshot
        if snap is not self._snap:
            self._snap = snap
            self._by_name = {s.name: s for s in snap.servers}
            if self.codec is not None:
                self._by_id = {self.codec.server_id(s.name): s for s in snap.servers}
                self._known = {self.codec.server_id(s.name) for s in pool.known}

    def pick(self, pool: PoolRuntime, ctx: Any, ex: Any, exclude: Collection[Server]) -> Server | None:
        self._maps(pool)
        issued: int | None = None
        if self.cookie:
            value = ex.sticky
            if value is None:  # (a retry or a queued request was looked at before: the cookie is gone from parts)
                value = ex.sticky = _take_cookie(ex, self.name) or b""
            found = self.codec.decode(value) if value else None  # type: ignore[union-attr]
            if found is not None:
                sid, issued, seen = found
                server = self._by_id.get(sid)
                if server is None:
                    server = self._draining(pool, lambda s: self.codec.server_id(s.name) == sid)  # type: ignore[union-attr]
                    if server is None and self.cfg.persist and sid in self._known:
                        return None  # its server is down or gone, and the client wants no other
                if server is not None:
                    kept = self._keep(server, exclude)
                    if kept is _REFUSE:
                        return None
                    if kept is not None:
                        if kept is server and self.codec.needs_refresh(seen):  # type: ignore[union-attr]
                            ex.set_cookie = self._header(server.name, issued)
                        return kept
            server = pool.plain_pick(ctx, ex, exclude)
            if server is not None and server is not self.FULL:
                ex.set_cookie = self._header(server.name, None)
            return server
        key = ctx.client_ip
        name = self.table.get(key)  # type: ignore[union-attr]
        if name is not None:
            server = self._by_name.get(name) or self._draining(pool, lambda s: s.name == name)
            if server is None and self.cfg.persist:
                return None
            if server is not None:
                kept = self._keep(server, exclude)
                if kept is _REFUSE:
                    return None
                if kept is not None:
                    return kept
        server = pool.plain_pick(ctx, ex, exclude)
        if server is not None and server is not self.FULL:
            self.table.put(key, server.name)  # type: ignore[union-attr]
        return server

    def _draining(self, pool: PoolRuntime, match: Callable[[Server], bool]) -> Server | None:
        """A draining server the client is stuck to, while inside the drain grace."""
        if not pool.draining:
            return None
        now = self.clock()
        for server, since in pool.draining.values():
            if match(server) and now - since < self.cfg.drain_grace:
                return server
        return None

    def _keep(self, server: Server, exclude: Collection[Server]) -> Server | None:
        """``server`` itself when it can take the request; else what ``persist`` says (FULL / a
        sentinel for 503), or None to redispatch."""
        gone = server in exclude
        full = not gone and server.max_conns and server.load.active >= server.max_conns
        if not gone and not full:
            return server
        if not self.cfg.persist:
            return None
        return self.FULL if full else _REFUSE  # type: ignore[no-any-return]  # (sentinels)

    def _header(self, name: str, issued: int | None) -> bytes:
        value = self.codec.encode(name, issued).encode()  # type: ignore[union-attr]
        return b"Set-Cookie: %b=%b%b\r\n" % (self.name, value, self.attrs)


class _Refuse:
    """``_keep``'s answer under ``persist`` when the sticky server cannot be used: 503."""


_REFUSE: Any = _Refuse()


def _take_cookie(ex: Any, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in the request, removed from the forwarded Cookie header(s)
    (the server never sees it; other cookies pass as they came, a Cookie header left empty is
    dropped). With several, the last one wins."""
    parts = ex.parts
    found = None
    prefix = name + b"="
    for i in range(0, len(parts), 4):
        if parts[i].lower() != b"cookie" or prefix not in parts[i + 2]:
            continue
        kept = []
        for pair in parts[i + 2].split(b";"):
            pair = pair.strip()
            if pair.startswith(prefix):
                found = pair[len(prefix) :]
            elif pair:
                kept.append(pair)
        parts[i + 2] = b"; ".join(kept)
    if found is not None:
        ex.parts = [
            x
            for j in range(0, len(parts), 4)
            if parts[j].lower() != b"cookie" or parts[j + 2]
            for x in parts[j : j + 4]
        ]
    return found
