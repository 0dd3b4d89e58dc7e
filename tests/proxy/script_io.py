"""The event loop and transports as the data plane sees them, faked for scripted exchanges
(``script.py`` wires them to the proxy; nothing here knows the proxy's classes).

- ``FakeLoop``: ``time()`` moves only when the script says; ``call_soon`` callbacks run when the
  script settles; ``call_later`` timers when its clock reaches them. An exception raised by a
  callback propagates: it fails the test instead of being logged.
- ``Pipe``: one connection's transport. It records what the proxy writes (as the peer receives
  it) and how the proxy ends it (``ending``); what the peer sends waits while the proxy has
  paused reading, and its EOF comes after it, as a socket's bytes do. A transport the proxy
  closes or aborts tells its protocol ``connection_lost`` on the next turn of the loop, as
  asyncio does; an abort after SO_LINGER 0 is a reset.
- ``Dial``: a connect in progress, shaped as ``asyncio.ensure_future`` passes a future through.
"""

from __future__ import annotations

import heapq
import socket
import struct
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any

OPEN, CLOSED, ABORTED, RESET = "open", "closed", "aborted", "reset"  # how the proxy ended a connection
LOST = "lost"  # the peer reset it or went away before the proxy ended it
EOF = None  # in a pipe's inbox: the peer half-closed
START = 1000.0  # the fake clock's first reading


class FakeLoop:
    """The event loop as the data plane uses it: a clock, callbacks soon, timers later."""

    def __init__(self) -> None:
        self.now = START
        self.ready: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self.timers: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self.seq = count()

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> None:
        self.ready.append((callback, args))

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self.timers, (self.now + delay, next(self.seq), callback, args))

    def every(self, interval: float, callback: Callable[[float], None]) -> None:
        """``callback(now)`` each ``interval`` seconds, as a task sleeping in a loop would."""

        def beat() -> None:
            callback(self.now)
            self.call_later(interval, beat)

        self.call_later(interval, beat)

    def run_ready(self) -> bool:
        """Run the callbacks due now (and those they schedule); False when there were none."""
        ran = bool(self.ready)
        while self.ready:
            callback, args = self.ready.popleft()
            callback(*args)
        return ran

    def next_timer(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    def fire_next(self) -> None:
        when, _, callback, args = heapq.heappop(self.timers)
        self.now = max(self.now, when)
        callback(*args)


class Pipe:
    """One connection's transport, as the proxy holds it; the peer's side is the verbs."""

    def __init__(self, loop: FakeLoop, protocol: Any, peer: str) -> None:
        self.loop, self.protocol, self.peer = loop, protocol, peer
        self.data = bytearray()  # what the proxy wrote while the connection was open
        self.ending = OPEN  # how the proxy ended it (or CLOSED when it closed after the peer's EOF)
        self.half_closed = False  # the proxy sent EOF (``write_eof``, in a tunnel)
        self.reading = True
        self.inbox: deque[bytes | None] = deque()  # sent by the peer, not read yet (reading paused)
        self.lost = False  # the protocol was told ``connection_lost``
        self.peer_eof = False  # the peer half-closed: it sends nothing more
        self.linger = False  # SO_LINGER 0: an abort is a reset (``proxy.reset``)
        self.on_write: Callable[[], None] | None = None

    # -- the transport interface the proxy uses ------------------------------------

    def write(self, data: bytes) -> None:
        if self.ending == OPEN:
            self.data += data
            if self.on_write is not None:
                self.on_write()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.half_closed = True

    def close(self) -> None:
        self._end(CLOSED)

    def abort(self) -> None:
        self._end(RESET if self.linger else ABORTED)

    def is_closing(self) -> bool:
        return self.ending != OPEN

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if not self.reading:
            self.reading = True
            self.loop.call_soon(self.pump)  # (a loop reads again on its next turn)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (self.peer, 40000)
        if name == "socket":
            return self  # (only ``setsockopt`` is used: see below)
        return default

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        if level == socket.SOL_SOCKET and option == socket.SO_LINGER:
            self.linger = struct.unpack("ii", value) == (1, 0)

    # -- the peer's side -----------------------------------------------------------

    def deliver(self, data: bytes | None) -> None:
        """The peer sent ``data`` (or EOF): read now, or once the proxy reads again."""
        assert not self.peer_eof, "the script sends on a side it half-closed"
        self.peer_eof = data is EOF
        if self.ending == OPEN:
            self.inbox.append(data)
            self.pump()

    def pump(self) -> None:
        while self.inbox and self.reading and self.ending == OPEN:
            data = self.inbox.popleft()
            if data is EOF:
                if not self.protocol.eof_received():
                    self.close()  # (asyncio closes a transport whose protocol keeps no half-open side)
            else:
                self.protocol.data_received(data)

    def drop(self, exc: Exception | None) -> None:
        """The connection is gone: its protocol hears it once."""
        if not self.lost:
            self.lost = True
            if self.ending == OPEN:
                self.ending = LOST
            self.inbox.clear()
            self.protocol.connection_lost(exc)

    def _end(self, how: str) -> None:
        if self.ending == OPEN:
            self.ending = how
            self.loop.call_soon(self.drop, None)


class Dial:
    """A connect in progress, shaped as ``asyncio.ensure_future`` passes a future through."""

    _asyncio_future_blocking = False  # (what ``asyncio.isfuture`` looks for)

    def __init__(self, loop: FakeLoop, cpool: Any) -> None:
        self.loop, self.cpool = loop, cpool
        self.done = False
        self.conn: Any = None
        self.exc: BaseException | None = None
        self.callbacks: list[Callable[[Dial], None]] = []

    def add_done_callback(self, callback: Callable[[Dial], None]) -> None:
        if self.done:
            self.loop.call_soon(callback, self)
        else:
            self.callbacks.append(callback)

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return self.exc

    def result(self) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.conn

    def settle(self, conn: Any, exc: BaseException | None = None) -> None:
        if not self.done:
            self.done, self.conn, self.exc = True, conn, exc
            for callback in self.callbacks:
                self.loop.call_soon(callback, self)

    def time_out(self) -> None:
        self.settle(None, TimeoutError())
