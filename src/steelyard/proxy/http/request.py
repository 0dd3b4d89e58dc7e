"""Request parsing for client connections: reads fed to llhttp, and llhttp's callbacks.

``data_received`` is ``DownstreamProtocol``'s (bound there as a class attribute: a method
that called it would cost a call per read); a complete head goes to ``dispatch``; the
connection's state machine is in ``downstream``.

Parsers are shared, not owned:
- Every request parser is built on one callbacks object, ``PARSERS`` (a ``Parsers``), and the
  callbacks act on its ``feeding``: the connection whose ``feed_data`` is running (set around
  each call, restored after it, so a nested feed is harmless). A parser built on the protocol
  itself would hold six bound methods per connection, 384 bytes. ``PARSERS`` is the one piece
  of shared state on this path: the free list (``spare``) and that cursor, in one named place.
- A connection takes a parser (from ``SPARE``, the free list, else a new one) when bytes arrive and gives it
  back (``release``) when it goes idle between requests: idle keep-alive connections hold no
  parser at all (~900 bytes each with its llhttp state). Only a parser whose last request was
  complete and kept alive by llhttp is given back, and never from inside its own
  ``feed_data``: llhttp is then at the start of a message, as a new parser is. Any other
  parser (a closing connection's, one in the middle of a head) goes with its connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from . import headers as H
from .dispatch import dispatch
from .errors import Closed
from .exchange import Exchange
from .guard import HEAD_STEP, Refused, in_slices, parse_status, version_ok  # (a long target: 414 once the head is in)

if TYPE_CHECKING:
    from .downstream import DownstreamProtocol

PIPELINE, UPSTREAM_FULL, PENDING_FULL, HELD = 1, 2, 4, 8  # why reading is paused (``DownstreamProtocol.paused``)
PENDING_LIMIT = 256 * 1024  # body bytes buffered per request while no connection is ready
MAX_HEAD = 64 * 1024  # request line + headers; more is refused with 431 (measured within HEAD_STEP)
SPARE_MAX = 256  # idle parsers kept for the next connection that needs one (more: dropped by the sweep)
_request_code = H.REQUEST_CODES.get  # bound once: one C call per header, no lookups


def trim() -> None:
    """Drop the spare parsers past ``SPARE_MAX`` (the listeners' sweep calls this: it keeps
    ``release``, once per request, to one append)."""
    del SPARE[SPARE_MAX:]


def data_received(self: DownstreamProtocol, data: bytes) -> None:
    L = self.L
    self.last_active = L.now
    L.bytes_in += len(data)
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
    parser = self.parser
    if parser is None:
        parser = self.parser = SPARE.pop() if SPARE else HttpRequestParser(PARSERS)
    P = PARSERS
    outer, P.feeding = P.feeding, self
    try:
        parser.feed_data(data)
    except HttpParserUpgrade as upg:
        # the upgrade request is the last one parsed: current, or last in the queue
        self.upgrading = self.queue[-1] if self.queue else self.current
        if self.upgrading is not None:
            self.upgrading.extra().early = []
            self._hold_early(data[upg.args[0] :])
    except HttpParserError as exc:
        fresh, self.fresh = self.fresh, None
        if not self.dead:
            self._refuse_malformed(parse_status(exc))  # 400, or a limit's 413 / 414
            if fresh is not None and fresh is self.current and not self.dead:
                dispatch(self, fresh)  # (complete before the malformed one: it is answered first)
        return
    finally:
        P.feeding = outer
    fresh = self.fresh
    if fresh is not None:  # a request whose head came in this read goes out only now that the read
        self.fresh = None  # is parsed: what follows its head in the same read may refuse it
        if not self.dead:
            dispatch(self, fresh)
    ex = self.ex
    if ex is not None and not ex.method and (ex is before or self.current is None):
        # a head begun in an earlier read and still not finished: all of this read is head
        # (so is all of a read that began it when no other request is in flight)
        self.head_bytes += len(data)
        if self.head_bytes > MAX_HEAD:
            self._refuse_malformed(431)
            return
    cur = self.current
    if cur is not None and cur.pending and not cur.flush_pending(self.clock):
        cur.compact()  # (a body of tiny chunks waits as one bytes object, not a list of pieces)
        if cur.pending_size > PENDING_LIMIT:
            self._pause(PENDING_FULL)  # body bytes pile up while no connection is ready
    if ex is not None and ex is not cur and len(ex.pending) > 1:
        ex.compact()  # a pipelined request's body, waiting its turn


def release(down: DownstreamProtocol) -> None:
    """``down`` is idle after a kept-alive request (none begun since): its parser goes back."""
    parser = down.parser
    if parser is not None and down.ex is None and PARSERS.feeding is not down:
        down.parser = None
        SPARE.append(parser)


class Parsers:
    """The request parsers' shared state and llhttp's callbacks, which act on ``feeding``
    (see the module docstring): one instance, ``PARSERS``. The callbacks are static and read
    ``PARSERS``: a parser built on bound methods would make six method objects, and a
    connection that closes after its request makes a parser of its own (1.5k instructions)."""

    __slots__ = ("spare", "feeding")

    def __init__(self) -> None:
        self.spare: list[HttpRequestParser] = []  # parsers given back, taken again last in first out
        # the connection whose parser is running (None between feeds, when no callback can run)
        self.feeding: DownstreamProtocol = None  # type: ignore[assignment]

    @staticmethod
    def on_message_begin() -> None:
        down = PARSERS.feeding
        if down.dead:
            raise Closed("the connection is closing")
        down.ex = Exchange(down.clock())  # (the access log's start: a fresh reading, not the sweep's)
        down.L.requests += 1
        down.head_bytes = 0
        if down.current is not None:
            down._pause(PIPELINE)

    @staticmethod
    def on_url(url: bytes) -> None:
        PARSERS.feeding.ex.url += url  # type: ignore[union-attr]

    @staticmethod
    def on_header(name: bytes, value: bytes) -> None:
        down = PARSERS.feeding
        ex: Exchange = down.ex  # type: ignore[assignment]  # (a callback runs only inside a request)
        if ex.method:
            return  # a trailer (after a chunked body): not forwarded, never a header of another request
        if down.keep_headers:
            ex.headers.append((name, value))
        code = _request_code(name)
        if code is None:
            code = H.request_code(name)
        if not code:  # ORDINARY
            ex.parts += (name, b": ", value, b"\r\n")
        elif code == H.HOST:  # (every request has one: kept inline)
            if ex.host is not None:
                ex.refuse = 400  # several Host headers
            ex.host = value
            ex.parts += (name, b": ", value, b"\r\n")
        else:
            ex.special_header(code, value)

    @staticmethod
    def on_headers_complete() -> None:
        down = PARSERS.feeding
        if down.dead:
            raise Closed("the connection is closing")
        ex: Exchange = down.ex  # type: ignore[assignment]
        p: HttpRequestParser = down.parser  # type: ignore[assignment]
        ex.method = p.get_method()
        keep = p.should_keep_alive()
        ex.keep_alive = keep and not down.closing
        ex.http11 = keep  # without Connection/Proxy-Connection, llhttp keeps 1.1 alive
        specials = ex.specials
        if specials:  # (Connection, Upgrade and the framing headers are all special: else none came)
            if ex.connection_header:  # (get_http_version formats a string: dear)
                ex.http11 = p.get_http_version() == "1.1"
            if ex.upgrade is not None and not p.should_upgrade():
                ex.upgrade = None  # Upgrade without "Connection: upgrade" is ignored
            if ex.chunked and ex.clen is not None:
                ex.refuse = 400  # both Content-Length and Transfer-Encoding
        if not ex.http11 and not version_ok(p.get_http_version()):
            ex.refuse = 505  # HTTP/2.0 or 0.9 in an HTTP/1 request line
        L = down.L
        if len(ex.parts) + specials > L.max_parts or len(ex.url) > L.max_uri_length:
            ex.refuse = 431 if len(ex.parts) + specials > L.max_parts else 414
        if down.current is None:
            down.current = down.fresh = ex  # dispatched once the read is parsed
        elif down.queue:
            down.queue.append(ex)  # (a list once non-empty)
        else:
            down.queue = [ex]  # (no list until a request is pipelined)

    @staticmethod
    def on_body(body: bytes) -> None:
        down = PARSERS.feeding
        ex: Exchange = down.ex  # type: ignore[assignment]  # (a callback runs only inside a request)
        more = ex.more or ex.extra()
        more.body_size += len(body)
        if more.body_size > (more.max_body or down.L.max_body):
            raise Refused(413)
        piece = H.chunk(body) if ex.chunked else body
        ex.pending.append(piece)
        ex.pending_size += len(piece)

    @staticmethod
    def on_message_complete() -> None:
        down = PARSERS.feeding
        ex: Exchange = down.ex  # type: ignore[assignment]  # (a callback runs only inside a request)
        down.ex = None
        if ex.chunked:
            ex.pending.append(H.LAST_CHUNK)
        ex.request_done = True
        if ex.conn is not None and not ex.pending:
            # sent in full (reused connection): the response timeout starts (no body: it was sent just now)
            ex.t_sent = ex.t_start if ex.more is None and not ex.chunked else down.clock()


PARSERS = Parsers()
SPARE = PARSERS.spare  # (the free list, under its own name)
