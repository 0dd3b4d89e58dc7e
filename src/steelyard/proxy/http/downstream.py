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
- Reading pauses for four reasons, tracked as bits: a pipelined request waits its
  turn, the server's transport is full, body bytes pile up while connecting, or
  ``PIPELINE_MAX`` pipelined requests wait already (the rest of the read is held as bytes).
- A request is sent only once the read that brought its head is parsed: a malformed body
  in the same read refuses it before any byte reaches a server.
- Bytes of a request body go to the server framed the way steelyard forwards them
  (one framing header, re-chunked when the client sent chunked).
- Bytes after an upgrade request are held back until the server's 101: a server
  that declines the upgrade never sees them (they would be a smuggled request).
- Endings the client causes (it went away, it stalled its upload) are not reported to
  the balancer as the server's success or failure.
- An idle keep-alive connection holds no request parser (``request`` lends one per request)
  and no pipelining list; what depends only on the client address is shared per address
  (``HttpListener.client``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..reset import reset
from . import dispatch, request
from .errors import BUSY, CANNED, head_only
from .guard import PIPELINE_MAX
from .request import HELD, MAX_HEAD, PENDING_FULL, PENDING_LIMIT, PIPELINE, SPARE, UPSTREAM_FULL, release
from .tunnel import Tunnel

if TYPE_CHECKING:
    from httptools import HttpRequestParser

    from .exchange import Exchange
    from .listener import HttpListener
    from .upstream import UpstreamConnection

__all__ = ["MAX_HEAD", "PENDING_LIMIT", "UPSTREAM_FULL", "DownstreamProtocol"]
NO_QUEUE: tuple[()] = ()  # ``queue`` until a request is pipelined (a list: 56 bytes per idle connection)


class DownstreamProtocol(asyncio.Protocol):
    __slots__ = (
        "L", "clock", "transport", "parser", "ex", "current", "queue", "ctx", "ip", "forwarded", "paused",
        "write_paused", "closing", "tunnel", "tunnel_conn", "last_active", "head_bytes", "upgrading", "keep_headers",
        "dead", "eof", "served", "refusal", "advancing", "fresh", "held",
    )  # fmt: skip

    def __init__(self, listener: "HttpListener") -> None:
        self.L = listener
        self.clock = listener.clock  # (the listener's bound loop.time: read several times per request)
        self.keep_headers = listener.keep_headers
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser: HttpRequestParser | None = None  # taken while a request is read (``request``)
        self.ex: Exchange | None = None  # the request being parsed
        self.current: Exchange | None = None  # the request being answered
        self.queue: list[Exchange] | tuple[()] = NO_QUEUE  # pipelined requests waiting their turn
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
        self.fresh: Exchange | None = None  # a request whose head came in the read being parsed (sent after it)
        self.held: bytes | None = None  # bytes not parsed yet: PIPELINE_MAX requests wait already

    # -- connection lifecycle ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else ""
        client = self.L.clients.get(ip)  # (shared by the connections of one client address)
        self.ip, self.forwarded, self.ctx = client if client is not None else self.L.client(ip)
        self.last_active = self.L.now
        if self.L.stopping:
            self.shutdown()
        if not self.L.admit(self, ip):  # over max_connections (per listener or per client): closed at once
            self.dead = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.L.forget(self)
        if self.tunnel is not None:
            self.tunnel.close(exc)
        cur, self.current = self.current, None
        self.queue = NO_QUEUE
        self.held = None
        if cur is not None:
            cur.drop_upstream()
            cur.abandon()
            if cur.more is not None and cur.more.filters is not None:
                cur.more.filters.ended(0)  # (filters: a task waited on is cancelled, logging runs)

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
        """Stop taking requests: the current response (if any) says ``Connection: close`` if its
        head has not gone yet, pipelined ones wait no more. A connection idle between requests
        stays open for the listener's moment of grace (``close_if_idle``): a request already on
        its way is answered, with ``Connection: close``, instead of meeting a closed connection
        (as HAProxy's ``idle-close-on-response``). So does one whose current response already
        promised keep-alive in its head, once that response ends (its client may send the next
        request the moment it reads it), unless requests pipelined behind it were dropped."""
        self.closing = True
        cur = self.current
        dropped = bool(self.queue) or self.held is not None or (self.ex is not None and self.ex is not cur)
        self.queue = NO_QUEUE
        self.held = None
        if cur is not None:
            conn = cur.conn
            if dropped or conn is None or conn.ex is not cur or not conn.responded:
                cur.keep_alive = False  # (its head says Connection: close, or closes for the dropped ones)

    def close_if_idle(self) -> None:
        """After ``shutdown``'s moment of grace: a connection with no request in progress goes."""
        if self.ex is None and self.current is None and self.tunnel is None and not self.dead:
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

    # -- request parsing (``request``: llhttp's callbacks act on the connection being fed) --------

    data_received = request.data_received

    def hold(self, data: bytes) -> None:
        """Keep ``data`` unparsed until the pipelined requests before it are answered (``_next``)."""
        self.held = data if self.held is None else self.held + data
        self._pause(HELD)

    def _hold_early(self, data: bytes) -> None:
        if data and self.upgrading is not None and self.upgrading.hold_early(data) > PENDING_LIMIT:
            self._pause(PENDING_FULL)

    # -- dispatch ----------------------------------------------------------------

    def attach(self, conn: "UpstreamConnection", ex: Exchange) -> None:
        """Send ``ex`` on ``conn`` (an idle one, or one just connected for it)."""
        conn.start(ex, self)
        if self.write_paused:
            conn.transport.pause_reading()  # type: ignore[union-attr]
        if self.paused & PENDING_FULL:
            self._resume(PENDING_FULL)

    # -- endings -------------------------------------------------------------------

    def exchange_done(self, ex: Exchange, now: float) -> None:
        """``ex``'s response was forwarded in full (``now``: the clock, just read)."""
        L = self.L
        if L.access is not None:
            L.access.record(self, ex, ex.status, ex.server)
        L.codes[ex.status // 100] += 1
        L.bytes_out += ex.resp_bytes
        ex.settle(True, now, len(ex.head) if ex.more is None else ex.sent_bytes())
        self.current = None
        self.served = True
        if not ex.keep_alive or not ex.request_done or self.closing and L.idle_grace_over:
            # (a response that ended before its request did leaves the request's
            # remaining bytes unread: closing is the only safe way on)
            self._close()
        elif self.paused or self.queue or self.eof or self.refusal:
            self._next()
        else:
            self.last_active = self.L.now  # all _next does when nothing waits, and give back the parser:
            parser = self.parser  # (``request.release``, inline)
            if parser is not None and self.ex is None and request.PARSERS.feeding is not self:
                SPARE.append(parser)
                self.parser = None

    def exchange_failed(self, ex: Exchange, status: int, responded: bool, retry: int = 0) -> None:
        """``ex`` failed with ``status``; with ``retry`` (``dispatch.SENT`` or ``UNSENT``: the request
        can safely go again) another server gets it, as the pool's retries and budget allow."""
        if retry and not responded and dispatch.retry_elsewhere(self, ex, retry):
            return
        ex.settle(False, self.clock())
        self._answer_failure(ex, status, CANNED[(status, True)], CANNED[(status, False)], responded)

    def local_failure(self, ex: Exchange) -> None:
        """``ex`` could not go out for lack of local resources (descriptors): 503, and nothing is
        reported against its server (``resources``)."""
        ex.abandon()
        self._answer_failure(ex, 503, CANNED[(503, True)], CANNED[(503, False)], False)

    def busy(self, ex: Exchange) -> None:
        """Every server is at its max_conns and the queue is full (or ``ex`` waited too long)."""
        self._answer_failure(ex, 503, BUSY[True], BUSY[False], False)

    def _answer_failure(self, ex: Exchange, status: int, closing: bytes, keeping: bytes, responded: bool) -> None:
        if ex.method == b"HEAD":
            closing, keeping = head_only(closing), head_only(keeping)
        if ex.pool is not None:
            ex.pool.answered[status] += 1
        self.counted(status, len(keeping))
        if self.L.access is not None:
            self.L.access.record(self, ex, status, None)
        self.current = None
        self.served = True
        if responded:
            reset(self.transport)  # a half-sent response cannot be repaired: the client must see a cut
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
        if self.paused:  # (the finished exchange's server may have left this connection paused;
            # a queue of PIPELINE_MAX still waiting keeps reading paused: no read may add to it)
            self._resume(
                PIPELINE | PENDING_FULL | UPSTREAM_FULL
                if len(self.queue) <= PIPELINE_MAX
                else PENDING_FULL | UPSTREAM_FULL
            )
        while True:
            while self.current is None and self.queue and not self.dead:
                ex = self.current = self.queue.pop(0)
                if not self.queue:
                    self.queue = NO_QUEUE
                dispatch.dispatch(self, ex)  # route, pick, queue or send
            held = self.held
            if held is None or self.dead or len(self.queue) >= PIPELINE_MAX:
                break
            self.held = None  # parse what waited (reading stays paused until it is all parsed)
            self.data_received(held)
            if self.held is None:
                self._resume(HELD)
        self.advancing = False
        if self.current is not None or self.dead:
            return
        if self.refusal:
            self.counted(self.refusal, len(CANNED[(self.refusal, True)]))
            self.transport.write(CANNED[(self.refusal, True)])
            self._close()
        elif (self.eof or self.closing and self.L.idle_grace_over) and self.ex is None:
            self._close()  # (closing, within the moment of grace: idle until close_if_idle)
        else:
            if self.paused & PIPELINE:  # (a request begun behind one answered at once in this loop
                self._resume(PIPELINE)  # paused reading for its turn: none is in flight now)
            if self.ex is None:
                release(self)  # idle (after a kept-alive request: any other closed the connection)

    def _refuse_malformed(self, status: int) -> None:
        """A request that cannot be parsed: when it is a later pipelined one, the requests
        before it are answered first (reading stops); else it is refused at once. A pipelined
        request whose head was complete (its body is bad) leaves the queue: it never goes."""
        ex, queue = self.ex, self.queue
        if queue and queue[-1] is ex:
            queue.pop()
            if not queue:
                self.queue = NO_QUEUE
        if self.current is not None and ex is not self.current:
            self.refusal = status
            self.ex = None
            self._pause(PIPELINE)
        else:
            self._refuse(status)

    def _refuse(self, status: int) -> None:
        """Answer a request that will not be forwarded, and close (its framing is suspect)."""
        cur = self.current
        self.current = self.ex = self.upgrading = None
        self.queue = NO_QUEUE
        self.held = None
        if cur is not None:
            responded = cur.drop_upstream()
            cur.abandon()  # (every refusal is the client's doing, never the server's failure)
            if cur.more is not None and cur.more.filters is not None:
                cur.more.filters.ended(status)
            if responded:
                reset(self.transport)  # the refusal cannot follow half a response
                self.dead = True
                return
        self.counted(status, len(CANNED[(status, True)]))
        self.transport.write(CANNED[(status, True)])
        self._close()

    def counted(self, status: int, size: int) -> None:
        """Count a response steelyard wrote itself on the listener (``exchange_done`` counts
        the forwarded ones inline)."""
        self.L.codes[status // 100] += 1
        self.L.bytes_out += size

    def start_tunnel(self, ex: Exchange, conn: "UpstreamConnection") -> None:
        """The server accepted the upgrade: relay raw bytes from now on (early bytes first)."""
        ex.settle(True, self.clock(), ex.sent_bytes())
        self.counted(101, ex.resp_bytes)
        if ex.more is not None and ex.more.filters is not None:
            ex.more.filters.ended(101)
        self.current = self.upgrading = None
        self.tunnel, self.tunnel_conn = conn.tunnel, conn
        if ex.more is not None and ex.more.early:
            conn.transport.write(b"".join(ex.more.early))  # type: ignore[union-attr]
            ex.more.early = None
        self._resume(PENDING_FULL)
