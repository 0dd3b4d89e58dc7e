"""A server's response held back while a ``response_filter`` call is awaited (``phases``).

``Held`` stands in for the client connection as the server connection's ``down``: what the
connection writes for the client is kept, its ending is deferred, its failures are answered
(nothing reached the client yet), and flow control goes to the real client connection. The
server connection stops being read as the hold begins (the read that brought the head is
parsed to its end, so at most one read is kept; past ``HOLD_LIMIT`` bytes reading stops again
should a client's ``resume_writing`` have restarted it).

The head was built without the server's header fields (``Run.response_head`` returned none):
``release`` puts the fields as the filters left them right after the status line, ``pre``
bytes into what was kept (interim responses written with it come first).

``responded`` ends the response phase (at once, or for what is held); ``fail_response`` is its
failure while the head is still being parsed (nothing was held).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...filters import ResponseHead, to_parts
from .errors import CANNED, Closed

if TYPE_CHECKING:
    from .downstream import DownstreamProtocol
    from .exchange import Exchange
    from .phases import Run
    from .upstream import UpstreamConnection

HOLD_LIMIT = 256 * 1024


class Held:
    __slots__ = ("run", "conn", "down", "ex", "L", "kept", "size", "pre", "done", "write_paused", "transport")

    def __init__(self, run: Run, conn: UpstreamConnection, down: DownstreamProtocol) -> None:
        self.run, self.conn, self.down, self.ex = run, conn, down, run._ex
        self.L = down.L  # (the connection reads the listener's TLS for a sticky cookie's Secure)
        self.kept: list[bytes] = []
        self.size = 0
        self.pre = 0
        self.done: float | None = None  # when the server's response ended, if it did while held
        # (truthy: the server connection resumes reading when it goes idle, and is never taken
        # for stalled; a filter that hangs is ended by its own timeout)
        self.write_paused = 1.0
        self.transport = self  # (the connection writes to ``down.transport``)
        conn.down = self  # type: ignore[assignment]
        conn.transport.pause_reading()  # type: ignore[union-attr]

    # -- what the server connection calls on its ``down`` ------------------------------

    def write(self, data: bytes) -> None:
        self.kept.append(data)
        self.size += len(data)
        conn = self.conn
        if self.size > HOLD_LIMIT and conn.down is self and conn.transport is not None:  # type: ignore[comparison-overlap]
            conn.transport.pause_reading()

    def exchange_done(self, ex: Exchange, now: float) -> None:
        self.done = now

    def exchange_failed(self, ex: Exchange, status: int, responded: bool, retry: int = 0) -> None:
        """The server connection failed while held: nothing of it reached the client, so the
        client gets the failure (or the request another server) as if no head had come."""
        run = self.run
        if run._held is self:
            run._held = None
            if run._waiting is not None:
                run._waiting.cancel()
        self.kept = []
        self.down.exchange_failed(ex, status, False, retry)

    def pause_for_upstream(self) -> None:
        self.down.pause_for_upstream()

    def resume_for_upstream(self) -> None:
        self.down.resume_for_upstream()

    # -- the filter's outcome --------------------------------------------------------------

    def release(self, fields: bytes) -> None:
        """The filters are done: the head (with ``fields``) and what was kept go to the client."""
        conn, down, ex = self.conn, self.down, self.ex
        data = b"".join(self.kept)
        self.kept = []
        cut = data.index(b"\r\n", self.pre) + 2
        down.transport.write(data[:cut] + fields + data[cut:])
        if conn.down is self:  # type: ignore[comparison-overlap]
            conn.down = down
        if self.done is not None:
            down.exchange_done(ex, self.done)
        elif conn.ex is ex and not down.write_paused and conn.transport is not None:
            conn.transport.resume_reading()

    def fail(self) -> None:
        """A filter failed: the server's response is dropped (and its connection, unless it is
        complete), the client gets 500; the server answered, so that counts as its success."""
        conn, down, ex = self.conn, self.down, self.ex
        self.kept = []
        if conn.down is self:  # type: ignore[comparison-overlap]
            conn.ex = conn.down = None
            if conn.transport is not None:
                conn.transport.abort()
        ex.settle(True, self.done or down.clock(), ex.sent_bytes())
        self.run._resp = ResponseHead(500)
        down._answer_failure(ex, 500, CANNED[(500, True)], CANNED[(500, False)], False)


def responded(run: Run, outcome: Any) -> None:
    """The response_filter calls are done with ``outcome`` (None, or a failure): go on at once
    (``Run.response_head`` reads it), or release or fail what is held."""
    held = run._held
    if held is None:  # (done at once: ``response_head`` goes on with the outcome)
        run._outcome = outcome
        return
    run._held = None
    if outcome is not None:
        held.fail()
        return
    resp = run._resp
    assert resp is not None
    if resp._headers is not None:
        fields = b"".join(to_parts(resp._headers._pairs))
    else:
        fields = b"".join(resp._parts or ())
    held.release(fields)


def fail_response(run: Run, conn: UpstreamConnection, ex: Exchange) -> None:
    """A response_filter call failed at once, inside the server connection's parse: the server
    answered (a success for it), the rest of its response goes unread, the client gets 500."""
    down = run._down
    conn.ex = conn.down = None
    conn.transport.abort()  # type: ignore[union-attr]
    ex.settle(True, down.clock(), ex.sent_bytes())
    run._resp = ResponseHead(500)
    down._answer_failure(ex, 500, CANNED[(500, True)], CANNED[(500, False)], False)
    raise Closed("a response filter failed")
