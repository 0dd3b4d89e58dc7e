"""Downstream side of the L7 proxy: one client connection.

State machine (requests are answered strictly in order):

    idle --request head parsed--> busy (``current`` dispatched to a server)
    busy --another request begins--> busy, reading paused, the new request queued
    busy --response done, keep-alive--> next queued request, or idle
    busy --response done, close wanted / response ended before the request--> closed
    busy --101 from the server--> tunnel (raw bytes both ways)
    idle --keep-alive timeout / shutdown--> closed
    head in progress --request timeout--> 408, closed
    any --malformed request--> 400, closed

Rules:
- Nothing on the per-request path logs, looks up config, or copies a body.
- Reading pauses for three reasons, tracked as bits: a pipelined request waits its
  turn, the server's transport is full, or body bytes pile up while connecting.
- Bytes of a request body go to the server framed the way steelyard forwards them
  (one framing header, re-chunked when the client sent chunked).
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from ...core.balancing import PickContext
from . import headers as H
from .errors import CANNED
from .exchange import Exchange

if TYPE_CHECKING:
    from ..pool import PoolRuntime
    from .listener import HttpListener
    from .upstream import ConnPool, UpstreamConnection

PIPELINE, UPSTREAM_FULL, PENDING_FULL = 1, 2, 4
PENDING_LIMIT = 256 * 1024  # body bytes buffered per request while no connection is ready


class DownstreamProtocol(asyncio.Protocol):
    __slots__ = (
        "L", "loop", "transport", "parser", "ex", "current", "queue", "ctx", "ip", "paused",
        "write_paused", "closing", "tunnel", "tunnel_conn", "last_active",
    )  # fmt: skip

    def __init__(self, listener: "HttpListener") -> None:
        self.L = listener
        self.loop = listener.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = HttpRequestParser(self)
        self.ex: Exchange | None = None  # the request being parsed
        self.current: Exchange | None = None  # the request being answered
        self.queue: deque[Exchange] = deque()
        self.paused = 0
        self.write_paused = False
        self.closing = False
        self.tunnel: asyncio.Transport | None = None
        self.tunnel_conn: UpstreamConnection | None = None

    # -- connection lifecycle ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else ""
        self.ip = ip.encode()
        self.ctx = PickContext(ip)
        self.last_active = self.L.now
        self.L.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.L.forget(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        cur, self.current = self.current, None
        self.queue.clear()
        if cur is None:
            return
        cur.dead = True
        self._drop_upstream(cur)
        self._account(cur, True)

    def _drop_upstream(self, ex: Exchange) -> bool:
        """Abandon ``ex``'s upstream connection (its response is unread, so it cannot be
        reused); True when some of that response already reached the client."""
        conn = ex.conn
        if conn is None or conn.ex is not ex:
            return False
        responded = conn.responded
        conn.ex = conn.down = None
        conn._cancel_timer()
        conn.transport.abort()  # type: ignore[union-attr]
        return responded

    def shutdown(self) -> None:
        """Stop taking requests: close now when idle, else after the current response."""
        self.closing = True
        if self.current is None and self.ex is None and self.tunnel is None:
            self.transport.close()

    def check_timeouts(self, now: float) -> None:
        if self.current is not None or self.tunnel is not None:
            return  # the upstream side owns timeouts while a request is in flight
        ex = self.ex
        if ex is not None:
            if now - ex.t_begin > self.L.request_timeout:
                self.transport.write(CANNED[(408, True)])
                self.transport.close()
        elif now - self.last_active > self.L.keepalive_timeout:
            self.transport.close()

    # -- flow control --------------------------------------------------------------

    def _pause(self, why: int) -> None:
        if not self.paused:
            self.transport.pause_reading()
        self.paused |= why

    def _resume(self, why: int) -> None:
        if self.paused & why:
            self.paused &= ~why
            if not self.paused:
                self.transport.resume_reading()

    def pause_for_upstream(self) -> None:
        self._pause(UPSTREAM_FULL)

    def resume_for_upstream(self) -> None:
        self._resume(UPSTREAM_FULL)

    def _answering_conn(self) -> "UpstreamConnection | None":
        cur = self.current
        return cur.conn if cur is not None else self.tunnel_conn

    def pause_writing(self) -> None:
        self.write_paused = True
        conn = self._answering_conn()
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        conn = self._answering_conn()
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()

    # -- request parsing ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_active = self.L.now
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        cur = self.current
        if cur is not None and cur.upgrade is not None and cur.request_done:
            cur.pending.append(data)  # bytes for the protocol the client asked to switch to
        else:
            try:
                self.parser.feed_data(data)
            except HttpParserUpgrade as upg:
                cur = self.current
                rest = data[upg.args[0] :]
                if rest and cur is not None:
                    cur.pending.append(rest)
            except HttpParserError:
                self._refuse(400)
                return
            cur = self.current
        if cur is not None and cur.pending:
            conn = cur.conn
            if conn is not None and conn.ex is cur:
                conn.transport.write(b"".join(cur.pending))  # type: ignore[union-attr]
                cur.pending.clear()
                cur.pending_size = 0
                if cur.request_done:
                    conn.arm_timer()
            elif cur.pending_size > PENDING_LIMIT:
                self._pause(PENDING_FULL)

    def on_message_begin(self) -> None:
        self.ex = Exchange(self.L.now)
        if self.current is not None:
            self._pause(PIPELINE)

    def on_url(self, url: bytes) -> None:
        self.ex.url += url  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.ex
        lname = name.lower()
        ex.headers.append((lname, value))  # type: ignore[union-attr]
        code = H.REQUEST_SPECIAL.get(lname)
        if code is None:
            if not lname.startswith(b"proxy-"):
                ex.parts += (name, b": ", value, b"\r\n")  # type: ignore[union-attr]
        elif code == H.HOST:
            if ex.host is not None:  # type: ignore[union-attr]
                ex.bad = "several Host headers"  # type: ignore[union-attr]
            ex.host = value  # type: ignore[union-attr]
            ex.parts += (name, b": ", value, b"\r\n")  # type: ignore[union-attr]
        elif code == H.CONTENT_LENGTH:
            if ex.clen is not None and ex.clen != value:  # type: ignore[union-attr]
                ex.bad = "conflicting Content-Length headers"  # type: ignore[union-attr]
            ex.clen = value  # type: ignore[union-attr]
        elif code == H.TRANSFER_ENCODING:
            ex.chunked = True  # type: ignore[union-attr]  # llhttp rejects any TE that is not a final chunked
        elif code == H.XFF:
            ex.xff = value if ex.xff is None else ex.xff + b", " + value  # type: ignore[union-attr]
        elif code == H.CONNECTION:
            ex.tokens = H.connection_tokens(value)  # type: ignore[union-attr]
        elif code == H.UPGRADE:
            ex.upgrade = value  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        ex = self.ex
        p = self.parser
        ex.method = p.get_method()  # type: ignore[union-attr]
        ex.http11 = p.get_http_version() == "1.1"  # type: ignore[union-attr]
        ex.keep_alive = p.should_keep_alive() and not self.closing  # type: ignore[union-attr]
        if ex.upgrade is not None and not p.should_upgrade():  # type: ignore[union-attr]
            ex.upgrade = None  # type: ignore[union-attr]  # Upgrade without "Connection: upgrade" is ignored
        if ex.chunked and ex.clen is not None:  # type: ignore[union-attr]
            ex.bad = "both Content-Length and Transfer-Encoding"  # type: ignore[union-attr]
        if self.current is None:
            self.current = ex
            self._dispatch(ex)  # type: ignore[arg-type]
        else:
            self.queue.append(ex)  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        ex.pending.append(H.chunk(body) if ex.chunked else body)  # type: ignore[union-attr]
        ex.pending_size += len(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        ex = self.ex
        self.ex = None
        if ex.chunked:  # type: ignore[union-attr]
            ex.pending.append(H.LAST_CHUNK)  # type: ignore[union-attr]
        ex.request_done = True  # type: ignore[union-attr]

    # -- dispatch ----------------------------------------------------------------

    def _dispatch(self, ex: Exchange) -> None:
        if ex.bad is not None or (ex.http11 and ex.host is None):
            self._refuse(400)
            return
        if ex.method == b"CONNECT":
            self._refuse(405)
            return
        pool = self.L.router.route(ex.host or b"", ex.url, ex.headers)
        snap = pool.snapshot
        ctx = self.ctx
        ctx.key = _hash_key(pool, ex) if pool.key_kind is not None else None
        server = snap.balancer.pick(ctx)
        if server is None:
            self.exchange_failed(ex, 503, False)
            return
        ex.server = server
        ex.pool = pool
        ex.balancer = snap.balancer
        parts = ex.parts
        if ex.tokens and not H.PLAIN_CONNECTION_TOKENS.issuperset(ex.tokens):
            parts = H.strip_listed(parts, set(ex.tokens))
        head = [ex.method, b" ", ex.url, b" HTTP/1.1\r\n", *parts]
        if ex.host is None:
            head.append(b"Host: %b\r\n" % server.address.encode())
        else:
            head.append(b"X-Forwarded-Host: %b\r\n" % ex.host)
        xff = self.ip if ex.xff is None else ex.xff + b", " + self.ip
        head.append(b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\n" % (xff, self.L.scheme))
        if ex.chunked:
            head.append(b"Transfer-Encoding: chunked\r\n")
        elif ex.clen is not None:
            head.append(b"Content-Length: %b\r\n" % ex.clen)
        if ex.upgrade is not None:
            head.append(b"Connection: upgrade\r\nUpgrade: %b\r\n" % ex.upgrade)
        head.append(b"\r\n")
        ex.head = b"".join(head)
        server.load.active += 1
        ex.t_start = self.loop.time()
        cpool = pool.upstreams[server]
        conn = cpool.acquire()
        if conn is not None:
            self._start(conn, ex)
        else:
            self._connect(ex, cpool)

    def _start(self, conn: "UpstreamConnection", ex: Exchange) -> None:
        conn.start(ex, self)
        if self.write_paused:
            conn.transport.pause_reading()  # type: ignore[union-attr]
        self._resume(PENDING_FULL)

    def _connect(self, ex: Exchange, cpool: "ConnPool") -> None:
        fut = asyncio.ensure_future(cpool.connect())
        fut.add_done_callback(partial(self._connected, ex, cpool))

    def _connected(self, ex: Exchange, cpool: "ConnPool", fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if ex.dead or ex is not self.current:
            if exc is None:
                cpool.release(fut.result())  # nobody waits for it now: keep it warm
            return
        if exc is not None:
            self.exchange_failed(ex, 504 if isinstance(exc, TimeoutError) else 502, False)
        else:
            self._start(fut.result(), ex)

    def replay(self, ex: Exchange) -> None:
        """A reused connection died before answering a replayable request: once more, fresh."""
        cpool = ex.pool.upstreams.get(ex.server) if ex.pool is not None else None  # type: ignore[arg-type]
        if cpool is None:
            self.exchange_failed(ex, 502, False)
        else:
            ex.conn = None
            self._connect(ex, cpool)

    # -- endings -------------------------------------------------------------------

    def _account(self, ex: Exchange, ok: bool) -> None:
        server = ex.server
        if server is None:
            return
        ex.server = None
        load = server.load
        load.active -= 1
        if ok:
            load.requests += 1
        else:
            load.failures += 1
        end = ex.t_head or self.loop.time()
        ex.balancer.on_done(server, ok, end - ex.t_start)

    def exchange_done(self, ex: Exchange, ok: bool) -> None:
        self._account(ex, ok)
        self.current = None
        if not ex.keep_alive or self.closing or not ex.request_done:
            # (a response that ended before its request did leaves the request's
            # remaining bytes unread: closing is the only safe way on)
            self.transport.close()
            return
        self._next()

    def exchange_failed(self, ex: Exchange, status: int, responded: bool) -> None:
        self._account(ex, False)
        self.current = None
        if responded:
            self.transport.abort()  # a half-sent response cannot be repaired
            return
        close = not ex.keep_alive or not ex.request_done or self.closing or ex.upgrade is not None
        self.transport.write(CANNED[(status, close)])
        if close:
            self.transport.close()
        else:
            self._next()

    def _next(self) -> None:
        self.last_active = self.L.now
        self._resume(PIPELINE | PENDING_FULL)
        if self.queue:
            ex = self.current = self.queue.popleft()
            self._dispatch(ex)
        elif self.closing and self.ex is None:
            self.transport.close()

    def _refuse(self, status: int) -> None:
        """Answer a request that will not be forwarded, and close (its framing is suspect)."""
        cur = self.current
        self.current = self.ex = None
        self.queue.clear()
        if cur is not None:
            responded = self._drop_upstream(cur)
            self._account(cur, False)
            if responded:
                self.transport.abort()  # the 400 cannot follow half a response
                return
        self.transport.write(CANNED[(status, True)])
        self.transport.close()
        self.parser = HttpRequestParser(self)  # drop whatever else the old parser holds

    def start_tunnel(self, ex: Exchange, conn: "UpstreamConnection") -> None:
        """The server accepted the upgrade: relay raw bytes from now on."""
        self._account(ex, True)
        self.current = None
        self.tunnel = conn.transport
        self.tunnel_conn = conn
        if ex.pending:
            conn.transport.write(b"".join(ex.pending))  # type: ignore[union-attr]
            ex.pending.clear()


def _hash_key(pool: "PoolRuntime", ex: Exchange) -> str | None:
    """The request's hash key for pools hashing on a header, a cookie or the URI."""
    kind = pool.key_kind
    if kind == "uri":
        return ex.url.decode("latin-1")
    want = pool.key_name
    if kind == "header":
        for name, value in ex.headers:
            if name == want:
                return value.decode("latin-1")
        return None
    for name, value in ex.headers:  # cookie
        if name == b"cookie":
            for pair in value.split(b";"):
                k, _, v = pair.strip().partition(b"=")
                if k == want:
                    return v.decode("latin-1")
    return None
