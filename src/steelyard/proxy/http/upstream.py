"""Upstream side of the L7 proxy: one HTTP/1.1 connection to a server (``connpool`` keeps them).

State machine of an ``UpstreamConnection`` (one request at a time, never pipelined):

    connecting --connection_made--> idle --start(ex)--> busy
    busy --response complete, keep-alive, request fully sent--> idle (back in the pool)
    busy --response complete otherwise / error / timeout--> closed
    busy --101 Switching Protocols--> tunnel (raw bytes both ways until either side closes)
    idle --server closes / idle too long / pool closed--> closed

Rules:
- The response head is forwarded only once complete; body bytes are forwarded as
  they arrive, re-framed for the client (Content-Length kept, otherwise chunked
  for HTTP/1.1 clients or delimited by close for HTTP/1.0 ones).
- Everything one ``data_received`` produces for the client goes out in one write.
- A failure before any response byte reached the client becomes an error response
  (502, or 504 on timeout); after that the client connection is aborted, because
  a half-sent response cannot be repaired.
- Flow control: when the client's transport is full, this connection stops
  reading; when this connection's transport is full, the client's stops reading.
- Per-response state is reset where it is used up, not all at once: ``start`` clears
  what every response sets, the final head what the headers set; ``mode`` and ``keep``
  are set by every final head before anything reads them, ``interim`` ends false with
  every response, ``until_close`` is set only on a connection that cannot be reused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from . import headers as H
from .dispatch import NO_RETRY, SENT
from .tunnel import Tunnel

if TYPE_CHECKING:
    from .connpool import ConnPool
    from .exchange import Exchange
    from .sides import ClientSide

# downstream framing modes
NONE, RAW, CHUNKED = 0, 1, 2
MAX_HEAD = 64 * 1024  # a response head larger than this is a 502
_response_code = H.RESPONSE_CODES.get  # bound once: one C call per header, no lookups


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "pool", "transport", "parser", "ex", "down", "reused", "tunnel",
        "parts", "tokens", "clen", "chunked", "upgrade", "reason", "mode", "out",
        "complete", "interim", "responded", "idle_since", "closed", "keep", "until_close",
        "head_bytes", "nread", "swept_nread", "stall_since", "mark",
    )  # fmt: skip

    def __init__(self, pool: "ConnPool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.ex: Exchange | None = None
        self.down: ClientSide | None = None  # the client side of the exchange (``sides``)
        self.reused = False
        self.tunnel: Tunnel | None = None
        self.out: list[bytes] = []
        self.idle_since = 0.0
        self.closed = False
        self.nread = self.swept_nread = 0  # bytes read on this connection (progress, and per response)
        self.mark = 0  # ``nread`` when the current exchange began
        self.stall_since = 0.0
        # the response being read (the module docstring says when each is reset):
        # its head so far (flat forwarded headers, reason phrase, special header values),
        self.parts: list[bytes] = []
        self.reason = b""
        self.tokens: list[bytes] | None = None  # Connection header tokens
        self.clen: bytes | None = None
        self.upgrade: bytes | None = None
        self.chunked = False
        # then how it is framed and where it stands
        self.mode = NONE
        self.complete = self.until_close = self.keep = self.interim = False
        self.responded = False  # the final response head went to the client
        self.head_bytes = 0  # bytes of reads that did not finish the head (0: nothing arrived yet)

    # -- lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, ex: "Exchange", down: "ClientSide") -> None:
        """Send ``ex``'s request head (and whatever body is buffered) on this connection."""
        self.ex, self.down = ex, down
        ex.conn = self
        self.mark = self.nread
        self.complete = self.responded = False
        self.head_bytes = 0
        pending = ex.pending
        if pending:
            pending.insert(0, ex.head)
            self.transport.write(b"".join(pending))  # type: ignore[union-attr]
            pending.clear()
            ex.pending_size = 0
        else:
            self.transport.write(ex.head)  # type: ignore[union-attr]
        if ex.request_done:
            ex.t_sent = self.pool.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.tunnel is not None:
            self.tunnel.close(exc)
            return
        ex = self.ex
        if ex is None:
            return
        if self.until_close and not self.complete and exc is None:
            # a response delimited by close has ended (llhttp only learns that on EOF;
            # a reset instead of a FIN means the body was cut short: that is a failure)
            self.on_message_complete()
            self._flush()
            self._finish(reusable=False)
        elif not self.responded and not self.head_bytes and self.reused and ex.replayable:
            # the server closed a kept-alive connection as we reused it: once more, fresh
            down, self.down = self.down, None
            self.ex = ex.conn = None
            self.pool.connect_for(ex, down)  # type: ignore[arg-type]
        else:
            # closed or reset: another server may take it if this one saw nothing of it, or
            # if it can be sent twice and this one answered nothing
            self.fail(502, SENT if not self.responded and not self.head_bytes and ex.replayable else NO_RETRY)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.eof(towards=self.tunnel.client)
        return None  # otherwise close: connection_lost ends a close-delimited response

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    # -- flow control ----------------------------------------------------------

    def pause_writing(self) -> None:
        if self.down is not None:
            self.down.pause_for_upstream()

    def resume_writing(self) -> None:
        if self.down is not None:
            self.down.resume_for_upstream()

    # -- response parsing ------------------------------------------------------

    def data_received(self, data: bytes, more: bool = False) -> None:
        """``more``: bytes follow this read's (``_head_at_limit``), so a response that is
        complete at its end said too much and its connection is not reused."""
        if self.tunnel is not None:
            self.tunnel.client.write(data)
            return
        if self.ex is None:
            self.transport.close()  # type: ignore[union-attr]  # unsolicited bytes: not reusable
            return
        if not self.responded and self.head_bytes + len(data) > MAX_HEAD:
            self._head_at_limit(data)
            return
        self.nread += len(data)  # progress (the sweep's stall check) and the response's size
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as upg:
            self._flush()
            self._to_tunnel(data[upg.args[0] :])
            return
        except HttpParserError:
            if self.complete:
                # a whole response, then bytes nobody asked for: deliver the response,
                # never the rest, and do not reuse a connection that said too much
                self._flush()
                self._finish(reusable=False)
            else:
                self.fail(502)
            return
        if not self.responded and self.ex is not None:
            # every byte of a read that did not finish the head belongs to the head
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD:
                self.fail(502)
                return
        if self.out and self.down is not None:  # (what _flush does, inline: this runs per read)
            self.down.transport.write(b"".join(self.out))
            self.out.clear()
        if self.complete:
            self._finish(self.keep and not more)

    def _head_at_limit(self, data: bytes) -> None:
        """A read that could carry the response head past ``MAX_HEAD``: exactly the bytes the
        limit leaves room for are parsed first; a head not complete by then is too large (502)."""
        room = MAX_HEAD - self.head_bytes
        ex = self.ex
        self.data_received(data[:room], True)
        if self.ex is ex and not self.responded:
            self.fail(502)
        else:  # the head ended in time: the rest is body, a tunnel's, or bytes nobody asked for
            self.data_received(data[room:])

    def _flush(self) -> None:
        out = self.out
        if out and self.down is not None:
            self.down.transport.write(b"".join(out))
            out.clear()

    def on_message_begin(self) -> None:
        if self.complete:
            raise HttpParserError("a second response to one request")

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.responded:
            return  # a trailer (after a chunked body): not forwarded, never a header of the next head
        code = _response_code(name)
        if code is None:
            code = H.response_code(name)
        if not code:  # ORDINARY
            self.parts += (name, b": ", value, b"\r\n")
        elif code == H.CONTENT_LENGTH:  # (the most common special headers first)
            self.clen = value
        elif code == H.CONNECTION:
            if value not in H.PLAIN_CONNECTION_VALUES and value.lower() not in H.PLAIN_CONNECTION_TOKENS:
                self.tokens = (self.tokens or []) + H.connection_tokens(value)
        elif code == H.TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                # a coding steelyard would have to pass on (gzip, chunked) or a body
                # delimited by close behind a coding: refused rather than mangled
                raise HttpParserError("unsupported transfer coding from the server")
            self.chunked = True
        elif code == H.UPGRADE:
            self.upgrade = value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        ex = self.ex
        if status < 200 and status != 101:
            # interim response (100 Continue, 103 Early Hints): pass it on, wait for the final one
            if ex.http11:  # type: ignore[union-attr]
                self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, b"".join(self.parts)))
            self.parts, self.reason = [], b""
            self.clen = self.tokens = self.upgrade = None
            self.chunked = False
            self.interim = True
            return
        if status == 101 and not ex.upgrade:  # type: ignore[union-attr]
            raise HttpParserError("101 without an upgrade request")
        self.keep = self.parser.should_keep_alive()
        ex.status = status  # type: ignore[union-attr]
        self.responded = True  # from here on an error can only abort the client connection
        if ex.on_done is not None:  # type: ignore[union-attr]
            ex.t_head = self.pool.loop.time()  # type: ignore[union-attr]  # only a learning balancer needs it
        # take what the headers set, leaving clean fields (pairs: no tuple is built for two)
        parts, self.parts = self.parts, []
        reason, self.reason = self.reason, b""
        clen, self.clen = self.clen, None
        chunked, self.chunked = self.chunked, False
        upgrade, self.upgrade = self.upgrade, None
        tokens, self.tokens = self.tokens, None
        if tokens and not H.PLAIN_CONNECTION_TOKENS.issuperset(tokens):
            parts = H.strip_listed(parts, set(tokens))
        if ex.more is not None:  # type: ignore[union-attr]  # (a body, an upgrade, a retry, or filters)
            more = ex.more  # type: ignore[union-attr]
            if more.tries and ex.pool.retry_header:  # type: ignore[union-attr]
                parts += (b"X-Steelyard-Retries", b": ", b"%d" % more.tries, b"\r\n")
            if more.filters is not None and status != 101:  # response_filter (``phases``)
                parts = more.filters.response_head(self, ex, status, parts)  # type: ignore[arg-type]
        # the head goes into ``out`` piece by piece: joined once with the body in _flush
        out = self.out
        cached = H.STATUS_LINES.get(status)
        out.append(cached[1] if cached is not None and cached[0] == reason else H.status_line(status, reason))
        out += parts
        if ex.set_cookie is not None:  # type: ignore[union-attr]  # a sticky pool (re)chose the server
            cookie = ex.set_cookie  # type: ignore[union-attr]
            out.append(cookie if self.down.L.tls is None else cookie[:-2] + b"; Secure\r\n")  # type: ignore[union-attr]
        if status == 101:
            out.append(b"Connection: upgrade\r\nUpgrade: %b\r\n\r\n" % (upgrade or ex.upgrade))  # type: ignore[union-attr, str-format]
            self.mode = NONE  # llhttp ends the 101 "message": no last chunk may follow it
            return
        head_only = ex.method == b"HEAD"  # type: ignore[union-attr]
        if head_only or status == 204 or status == 304:
            self.mode = NONE
            if clen is not None and status != 204:
                out += (b"Content-Length: ", clen, b"\r\n")
        elif clen is not None:
            self.mode = RAW
            out += (b"Content-Length: ", clen, b"\r\n")
        else:
            self.until_close = not chunked
            if ex.http11:  # type: ignore[union-attr]
                self.mode = CHUNKED
                out.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.mode = RAW  # delimited by close, towards an HTTP/1.0 client
                ex.keep_alive = False  # type: ignore[union-attr]
        if ex.upgrade or not ex.request_done:  # type: ignore[union-attr]
            # the upgrade was declined (the client's parser state is past it), or the answer
            # came before the whole request (its rest will not be read): close after, and say so
            ex.keep_alive = False  # type: ignore[union-attr]
        if not ex.keep_alive:  # type: ignore[union-attr]
            out.append(b"Connection: close\r\n\r\n")
        elif ex.http11:  # type: ignore[union-attr]
            out.append(b"\r\n")
        else:
            out.append(b"Connection: keep-alive\r\n\r\n")
        if head_only:
            # llhttp cannot be told the request was HEAD: the head is the whole
            # message, and a fresh parser takes the connection's next response
            self.complete = True
            self.parser = HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        mode = self.mode
        if mode == RAW:
            self.out.append(body)
        elif mode == CHUNKED:
            self.out.append(H.chunk(body))

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.mode == CHUNKED:
            self.out.append(H.LAST_CHUNK)
        self.complete = True

    # -- endings ---------------------------------------------------------------

    def _finish(self, reusable: bool) -> None:
        ex, down = self.ex, self.down
        self.ex = self.down = None
        ex.resp_bytes = self.nread - self.mark  # type: ignore[union-attr]
        now = self.pool.loop.time()  # (one reading for the idle stamp and the request's latency)
        if reusable and ex.request_done and not self.closed:  # type: ignore[union-attr]
            if down.write_paused:  # type: ignore[union-attr]
                self.transport.resume_reading()  # type: ignore[union-attr]  # paused for that client only
            pool = self.pool
            if pool.closed or len(pool.idle) >= pool.max_idle:  # (ConnPool.release, inline)
                self.close()
            else:
                self.idle_since = now
                pool.idle.append(self)
        else:
            self.close()
        down.exchange_done(ex, now)  # type: ignore[union-attr, arg-type]

    def fail(self, status: int, retry: int = NO_RETRY) -> None:
        """End the exchange with ``status`` (or an abort, if the client already has part of a
        response); with ``retry`` (``dispatch.SENT``) the request may go to another server instead."""
        ex, down = self.ex, self.down
        self.ex = self.down = None
        if self.transport is not None:
            self.transport.abort()
        if ex is not None and down is not None:
            down.exchange_failed(ex, status, self.responded, retry)

    def stalled(self, now: float) -> bool:
        """Whether a response in progress made no progress for the pool's timeout (reads
        are counted per sweep; a client that does not read is not the server's stall)."""
        if self.nread != self.swept_nread or self.down is None or self.down.write_paused:
            self.swept_nread = self.nread
            self.stall_since = now
            return False
        return now - self.stall_since > self.pool.timeout

    def _to_tunnel(self, rest: bytes) -> None:
        """After a 101: from now on bytes flow unparsed in both directions."""
        ex, down = self.ex, self.down
        self.ex = None
        self.tunnel = Tunnel(down.transport, self.transport)  # type: ignore[union-attr, arg-type]
        down.start_tunnel(ex, self)  # type: ignore[union-attr, arg-type]
        if rest:
            self.tunnel.client.write(rest)
