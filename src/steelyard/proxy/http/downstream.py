"""Downstream side of the L7 proxy: one client connection.

State machine (requests are answered strictly in order):

    idle --request head parsed--> busy (``current`` dispatched to a server)
    busy --another request begins--> busy, reading paused, the new request queued
    busy --response done, keep-alive--> next queued request, or idle
    busy --response done, close wanted / response ended before the request--> closed
    busy --101 from the server--> tunnel (raw bytes both ways)
    idle --keep-alive timeout / shutdown--> closed
    head in progress --request timeout / over MAX_HEAD bytes--> 408 / 431, closed
    body stalled --by the client / by the server (see ``timeouts``)--> 408 closed / 504
    busy --client half-closes--> what it asked is still answered, then closed
    busy --a later pipelined request is malformed--> earlier ones answered, then 400, closed
    any --malformed request--> 400, closed
    closed (``dead``) --> nothing more is parsed or dispatched, whatever the buffer holds

Rules:
- Nothing on the per-request path logs, looks up config, or copies a body.
- Reading pauses for three reasons, tracked as bits: a pipelined request waits its
  turn, the server's transport is full, or body bytes pile up while connecting.
- Bytes of a request body go to the server framed the way steelyard forwards them
  (one framing header, re-chunked when the client sent chunked).
- Bytes after an upgrade request are held back until the server's 101: a server
  that declines the upgrade never sees them (they would be a smuggled request).
- Endings the client causes (it went away, it stalled its upload) are not reported to
  the balancer as the server's success or failure.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from ...core.balancing import PickContext
from . import dispatch
from . import headers as H
from .errors import BUSY, CANNED, Closed
from .exchange import Exchange
from .guard import HEAD_STEP, Refused, in_slices, parse_status, version_ok  # (a long target: 414 once the head is in)
from .tunnel import Tunnel

if TYPE_CHECKING:
    from .listener import HttpListener
    from .upstream import UpstreamConnection


PIPELINE, UPSTREAM_FULL, PENDING_FULL = 1, 2, 4
PENDING_LIMIT = 256 * 1024  # body bytes buffered per request while no connection is ready
MAX_HEAD = 64 * 1024  # request line + headers; more is refused with 431 (measured within HEAD_STEP)
_request_code = H.REQUEST_CODES.get  # bound once: one C call per header, no lookups


class DownstreamProtocol(asyncio.Protocol):
    __slots__ = (
        "L", "clock", "transport", "parser", "ex", "current", "queue", "ctx", "ip", "forwarded", "paused",
        "write_paused", "closing", "tunnel", "tunnel_conn", "last_active", "head_bytes", "upgrading", "keep_headers",
        "dead", "eof", "served", "refusal", "advancing",
    )  # fmt: skip

    def __init__(self, listener: "HttpListener") -> None:
        self.L = listener
        self.clock = listener.clock  # (the listener's bound loop.time: read several times per request)
        self.keep_headers = listener.keep_headers
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = HttpRequestParser(self)
        self.ex: Exchange | None = None  # the request being parsed
        self.current: Exchange | None = None  # the request being answered
        self.queue: list[Exchange] = []  # pipelined requests waiting their turn (a list: 56 bytes, a deque 760)
        self.paused, self.write_paused, self.closing = 0, 0.0, False
        self.tunnel: Tunnel | None = None
        self.tunnel_conn: UpstreamConnection | None = None  # (the server's side of the tunnel)
        self.head_bytes = 0
        self.upgrading: Exchange | None = None  # an upgrade request whose 101 has not come yet
        self.dead = False  # closing: parse and dispatch nothing more
        self.eof = False  # the client half-closed
        self.served = False  # some request was answered (else idle time counts as head time)
        self.refusal = 0  # a malformed pipelined request, refused once the ones before it are answered
        self.advancing = False  # inside _next (keeps a run of synchronous failures iterative)

    # -- connection lifecycle ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else ""
        self.ip = ip.encode()
        self.forwarded = b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\n" % (self.ip, self.L.scheme)
        self.ctx = PickContext(ip)
        self.last_active = self.L.now
        if not self.L.admit(self, ip):  # over max_connections (per listener or per client): closed at once
            self.dead = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.L.forget(self)
        if self.tunnel is not None:
            self.tunnel.close()
        cur, self.current = self.current, None
        self.queue.clear()
        if cur is not None:
            cur.drop_upstream()
            cur.abandon()

    def _close(self) -> None:
        self.dead = True
        self.transport.close()

    def eof_received(self) -> bool | None:
        """The client half-closed: answer what it asked, then close (False/None closes now)."""
        if self.tunnel is not None:
            return self.tunnel.eof(towards=self.tunnel.server)
        self.eof = True
        return True if self.current is not None or self.queue else None

    def shutdown(self) -> None:
        """Stop taking requests: close now when idle between requests, else after the current
        response (which says ``Connection: close`` if its head has not gone yet); pipelined ones
        wait no more. A connection that has not sent its first request yet gets it answered (its
        client just connected: closing would fail a request no client retries)."""
        self.closing = True
        self.queue.clear()
        if self.current is not None:
            self.current.keep_alive = False
        elif self.ex is None and self.tunnel is None and self.served:
            self._close()

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
        self.last_active = self.L.now  # the body moves again: the stall clock restarts
        self._resume(UPSTREAM_FULL)

    def pause_writing(self) -> None:
        self._answering_reads(False)

    def resume_writing(self) -> None:
        self._answering_reads(True)

    def _answering_reads(self, on: bool) -> None:
        """The client's transport filled up (or drained): stop (or resume) reading the server."""
        self.write_paused = 0.0 if on else self.L.now  # since when the client reads nothing
        cur = self.current
        conn = cur.conn if cur is not None else self.tunnel_conn
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading() if on else conn.transport.pause_reading()

    # -- request parsing ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_active = self.L.now
        if self.tunnel is not None:
            self.tunnel.server.write(data)
            return
        if self.upgrading is not None:
            self._hold_early(data)
            return
        if self.dead or self.refusal:
            return
        if len(data) > HEAD_STEP and in_slices(self, data):  # (so that every head's size is measured)
            return
        before = self.ex
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upg:
            # the upgrade request is the last one parsed: current, or last in the queue
            self.upgrading = self.queue[-1] if self.queue else self.current
            if self.upgrading is not None:
                self.upgrading.extra().early = []
                self._hold_early(data[upg.args[0] :])
        except HttpParserError as exc:
            if not self.dead:
                self._refuse_malformed(parse_status(exc))  # 400, or a limit's 413 / 414
            return
        ex = self.ex
        if ex is not None and not ex.method and (ex is before or self.current is None):
            # a head begun in an earlier read and still not finished: all of this read is head
            # (so is all of a read that began it when no other request is in flight)
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD:
                self._refuse_malformed(431)
                return
        cur = self.current
        if cur is not None and cur.pending and not cur.flush_pending(self.clock) and cur.pending_size > PENDING_LIMIT:
            self._pause(PENDING_FULL)  # body bytes pile up while no connection is ready

    def _hold_early(self, data: bytes) -> None:
        if data and self.upgrading is not None and self.upgrading.hold_early(data) > PENDING_LIMIT:
            self._pause(PENDING_FULL)

    def on_message_begin(self) -> None:
        if self.dead:
            raise Closed("the connection is closing")
        self.ex = Exchange(self.L.now)
        self.head_bytes = 0
        if self.current is not None:
            self._pause(PIPELINE)

    def on_url(self, url: bytes) -> None:
        self.ex.url += url  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.ex
        if ex.method:  # type: ignore[union-attr]
            return  # a trailer (after a chunked body): not forwarded, never a header of another request
        if self.keep_headers:
            ex.headers.append((name, value))  # type: ignore[union-attr]
        code = _request_code(name)
        if code is None:
            code = H.request_code(name)
        if not code:  # ORDINARY
            ex.parts += (name, b": ", value, b"\r\n")  # type: ignore[union-attr]
        elif code == H.HOST:  # (every request has one: kept inline)
            if ex.host is not None:  # type: ignore[union-attr]
                ex.refuse = 400  # type: ignore[union-attr]  # several Host headers
            ex.host = value  # type: ignore[union-attr]
            ex.parts += (name, b": ", value, b"\r\n")  # type: ignore[union-attr]
        else:
            ex.special_header(code, value)  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        if self.dead:
            raise Closed("the connection is closing")
        ex = self.ex
        p = self.parser
        ex.method = p.get_method()  # type: ignore[union-attr]
        keep = p.should_keep_alive()
        ex.keep_alive = keep and not self.closing  # type: ignore[union-attr]
        ex.http11 = keep  # type: ignore[union-attr]  # without Connection/Proxy-Connection, llhttp keeps 1.1 alive
        specials = ex.specials  # type: ignore[union-attr]
        if specials:  # (Connection, Upgrade and the framing headers are all special: else none came)
            if ex.connection_header:  # type: ignore[union-attr]  # (get_http_version formats a string: dear)
                ex.http11 = p.get_http_version() == "1.1"  # type: ignore[union-attr]
            if ex.upgrade is not None and not p.should_upgrade():  # type: ignore[union-attr]
                ex.upgrade = None  # type: ignore[union-attr]  # Upgrade without "Connection: upgrade" is ignored
            if ex.chunked and ex.clen is not None:  # type: ignore[union-attr]
                ex.refuse = 400  # type: ignore[union-attr]  # both Content-Length and Transfer-Encoding
        if not ex.http11 and not version_ok(p.get_http_version()):  # type: ignore[union-attr]
            ex.refuse = 505  # type: ignore[union-attr]  # HTTP/2.0 or 0.9 in an HTTP/1 request line
        L = self.L
        if len(ex.parts) + specials > L.max_parts or len(ex.url) > L.max_uri_length:  # type: ignore[union-attr]
            ex.refuse = 431 if len(ex.parts) + specials > L.max_parts else 414  # type: ignore[union-attr]
        if self.current is None:
            self.current = ex
            self._dispatch(ex)  # type: ignore[arg-type]
        else:
            self.queue.append(ex)  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        more = ex.more or ex.extra()  # type: ignore[union-attr]
        more.body_size += len(body)
        if more.body_size > (more.max_body or self.L.max_body):
            raise Refused(413)
        ex.pending.append(H.chunk(body) if ex.chunked else body)  # type: ignore[union-attr]
        ex.pending_size += len(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        ex = self.ex
        self.ex = None
        if ex.chunked:  # type: ignore[union-attr]
            ex.pending.append(H.LAST_CHUNK)  # type: ignore[union-attr]
        ex.request_done = True  # type: ignore[union-attr]
        if ex.conn is not None and not ex.pending:  # type: ignore[union-attr]
            # sent in full (reused connection): the response timeout starts (no body: it was sent just now)
            ex.t_sent = ex.t_start if ex.more is None and not ex.chunked else self.clock()  # type: ignore[union-attr]

    # -- dispatch ----------------------------------------------------------------

    _dispatch = dispatch.dispatch  # route, pick, queue or send (see ``dispatch``)
    send = dispatch.send

    def attach(self, conn: "UpstreamConnection", ex: Exchange) -> None:
        """Send ``ex`` on ``conn`` (an idle one, or one just connected for it)."""
        conn.start(ex, self)
        if self.write_paused:
            conn.transport.pause_reading()  # type: ignore[union-attr]
        if self.paused & PENDING_FULL:
            self._resume(PENDING_FULL)

    # -- endings -------------------------------------------------------------------

    def exchange_done(self, ex: Exchange, ok: bool, now: float = 0.0) -> None:
        if self.L.access is not None:
            self.L.access.record(self, ex, ex.status, ex.server)
        ex.settle(ok, self.clock, now)
        self.current = None
        self.served = True
        if not ex.keep_alive or self.closing or not ex.request_done:
            # (a response that ended before its request did leaves the request's
            # remaining bytes unread: closing is the only safe way on)
            self._close()
        elif self.paused or self.queue or self.eof or self.refusal:
            self._next()
        else:
            self.last_active = self.L.now  # all _next does when nothing waits

    def exchange_failed(self, ex: Exchange, status: int, responded: bool, retry: int = 0) -> None:
        """``ex`` failed with ``status``; with ``retry`` (``dispatch.SENT`` or ``UNSENT``: the request
        can safely go again) another server gets it, as the pool's retries and budget allow."""
        if retry and not responded and dispatch.retry_elsewhere(self, ex, retry):
            return
        ex.settle(False, self.clock)
        self._answer_failure(ex, status, CANNED[(status, True)], CANNED[(status, False)], responded)

    def busy(self, ex: Exchange) -> None:
        """Every server is at its max_conns and the queue is full (or ``ex`` waited too long)."""
        self._answer_failure(ex, 503, BUSY[True], BUSY[False], False)

    def _answer_failure(self, ex: Exchange, status: int, closing: bytes, keeping: bytes, responded: bool) -> None:
        if ex.pool is not None:
            ex.pool.answered[status] += 1
        if self.L.access is not None:
            self.L.access.record(self, ex, status, None)
        self.current = None
        self.served = True
        if responded:
            self.transport.abort()  # a half-sent response cannot be repaired
            self.dead = True
            return
        unread = not ex.request_done and (ex.chunked or ex.clen not in (None, b"0"))  # a body still coming
        close = not ex.keep_alive or unread or self.closing or ex.upgrade is not None
        self.transport.write(closing if close else keeping)
        if close:
            self._close()
        else:
            self._next()

    def _next(self) -> None:
        """Dispatch queued requests in order; a loop, since each may fail synchronously (503)
        and re-enter here: the inner call returns at once and this loop goes on."""
        if self.advancing:
            return
        self.advancing = True
        self.last_active = self.L.now
        if self.paused:  # (the finished exchange's server may have left this connection paused)
            self._resume(PIPELINE | PENDING_FULL | UPSTREAM_FULL)
        while self.current is None and self.queue and not self.dead:
            ex = self.current = self.queue.pop(0)
            self._dispatch(ex)
        self.advancing = False
        if self.current is not None or self.dead:
            return
        if self.refusal:
            self.transport.write(CANNED[(self.refusal, True)])
            self._close()
        elif (self.closing or self.eof) and self.ex is None:
            self._close()

    def _refuse_malformed(self, status: int) -> None:
        """A request that cannot be parsed: when it is a later pipelined one, the requests
        before it are answered first (reading stops); else it is refused at once."""
        if self.current is not None and self.ex is not self.current:
            self.refusal = status
            self.ex = None
            self._pause(PIPELINE)
        else:
            self._refuse(status)

    def _refuse(self, status: int) -> None:
        """Answer a request that will not be forwarded, and close (its framing is suspect)."""
        cur = self.current
        self.current = self.ex = self.upgrading = None
        self.queue.clear()
        if cur is not None:
            responded = cur.drop_upstream()
            cur.abandon()  # (every refusal is the client's doing, never the server's failure)
            if responded:
                self.transport.abort()  # the refusal cannot follow half a response
                self.dead = True
                return
        self.transport.write(CANNED[(status, True)])
        self._close()

    def start_tunnel(self, ex: Exchange, conn: "UpstreamConnection") -> None:
        """The server accepted the upgrade: relay raw bytes from now on (early bytes first)."""
        ex.settle(True, self.clock)
        self.current = self.upgrading = None
        self.tunnel, self.tunnel_conn = conn.tunnel, conn
        if ex.more is not None and ex.more.early:
            conn.transport.write(b"".join(ex.more.early))  # type: ignore[union-attr]
            ex.more.early = None
        self._resume(PENDING_FULL)

