"""Demo application server for steelyard: a small but real HTTP/1.1 origin on asyncio + httptools.

``steelyard backend --name NAME --listen HOST:PORT [--delay 20ms]`` runs ``lab.run_backend``; tests and the
demo start it in-process with :func:`start_backend` / :func:`stop_backend`.

Routes match on the path for every method; HEAD gets the same head as GET and no body. Every response
carries ``X-Served-By: NAME``; every response except /healthz is held back by ``delay`` seconds first.
  /healthz               200 "ok\\n" text/plain (or the status /healthz/set/CODE chose, "failing\\n" from 400).
  /healthz/set/CODE      from now on /healthz answers CODE (200..599): a way to fail a health check by hand.
  /bytes/N[?chunked=1]   N bytes of wire.PATTERN repeated (see :func:`expected_bytes_sha256`), with
                         Content-Length, or Transfer-Encoding: chunked when asked (HTTP/1.1 clients only).
  /status/CODE           that status, 200..599; 204 and 304 carry no body, others "CODE Reason\\n".
  /sleep/MS              waits MS ms (0..3600000) on top of the delay, then answers like the default route.
  /close                 default-route answer with Connection: close, then the connection closes.
  anything else          200 application/json: {"server", "method", "path" (raw target), "http_version",
                         "headers": [[name, value], ...] as received, "client": "ip:port", "body_bytes",
                         "body_sha256"}. A bad N/CODE/MS gives 400 (connection kept).

Connection rules (the state machine, h11 style):
  R1  READING: bytes are fed to one httptools parser as they arrive. Parsing stops for good (STOPPED) after a
      request that does not keep the connection alive (Connection: close, HTTP/1.0 without keep-alive,
      an Upgrade), after a malformed request, or at peer EOF; later bytes are never interpreted.
  R2  Bodies (Content-Length or chunked) are hashed incrementally and dropped: memory is bounded by one read.
  R3  Responses go out strictly in request order. A completed request is answered synchronously only when
      no response is pending (no worker task), the write side is not paused and it needs no waiting (no
      delay, no /sleep, a /bytes body of at most 64 KiB); otherwise it is queued for the connection's
      single worker task, which answers the queue in order. Hence: worker is None <=> nothing pending.
  R4  Reading pauses while MAX_PIPELINE requests are queued and resumes once the queue is half drained.
  R5  Writes respect pause_writing/resume_writing: the worker awaits resume before each response and
      between 1 MiB blocks of a /bytes body, and yields to the loop every YIELD_EVERY blocks regardless.
  R6  A malformed request is answered, after every earlier response, with 400 (414 for a URL over MAX_URL,
      431 beyond MAX_HEADERS or MAX_HEADER_BYTES) and Connection: close.
  R7  CLOSING: after a Connection: close response the server half-closes (FIN), discards input, and
      closes when the peer does or after LINGER seconds, so the client reads the response, not a RST.
  R8  A connection with no activity (bytes read, write progress) for idle_timeout seconds is closed (this
      is both the request-header timeout and the keep-alive idle timeout); a deliberate delay/sleep does
      not count as inactivity. A connection that still has response bytes to send is aborted instead.
  R9  Expect: 100-continue gets an interim 100 only when no earlier response is pending (else the client
      sends the body after its own timeout).
  R10 Peer EOF (half-close) still gets every pending response, then the connection closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections import deque

import httptools

from steelyard.demo.wire import (
    BLOCK,
    BYTES,
    CLOSE,
    ERROR,
    HEALTH,
    HEALTH_SET,
    OCTETS,
    PATTERN,
    SLEEP,
    Heads,
    Request,
    expected_bytes_sha256,
    route,
    small_response,
)

__all__ = ["expected_bytes_sha256", "start_backend", "stop_backend"]

IDLE_TIMEOUT = 60.0
LINGER = 2.0
MAX_PIPELINE = 32
MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_BYTES = 65536
YIELD_EVERY = 8

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Limit(Exception):
    """Raised inside a parser callback to abort parsing; the status sits on the connection."""


class _Shared:
    """Settings of one listening server plus its live connections (so stop_backend can close them)."""

    __slots__ = ("conns", "delay", "heads", "health", "idle_timeout", "name")

    def __init__(self, name: str, delay: float, idle_timeout: float) -> None:
        self.name, self.delay, self.idle_timeout = name, delay, idle_timeout
        self.heads = Heads(name)
        self.conns: set[_BackendProtocol] = set()
        self.health = 200  # what /healthz answers


class _BackendProtocol(asyncio.Protocol):
    """One HTTP/1.1 server connection; the rules R1..R10 of the module docstring are its state machine."""

    def __init__(self, shared: _Shared) -> None:
        self._s = shared
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client = ""
        self._req: Request | None = None
        self._url: list[bytes] = []
        self._size = 0  # bytes of request line + headers of the message being parsed
        self._expect = False
        self._limit = 400
        self._queue: deque[Request] = deque()
        self._worker: asyncio.Task | None = None
        self._stopped = False  # R1: parsing is over
        self._closing = False  # R7: final response written
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future | None = None
        self._sleeping = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    # ---- transport events -------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self._client = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self._s.conns.add(self)
        self._last = self._loop.time()
        self._timer = self._loop.call_later(self._s.idle_timeout, self._on_timer)

    def connection_lost(self, exc) -> None:
        self._s.conns.discard(self)
        self._closing = self._stopped = True
        for handle in (self._timer, self._linger):
            if handle is not None:
                handle.cancel()
        if self._worker is not None:
            self._worker.cancel()
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        if self._stopped:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stopped = True  # the upgraded request is answered with Connection: close (R1)
        except httptools.HttpParserError as exc:
            if self._stopped:  # e.g. "Data after Connection: close": already done with this stream
                return
            cause = exc.__context__
            if cause is not None and not isinstance(cause, _Limit):
                raise cause  # noqa: B904 - a bug in a callback, not a bad request: let asyncio report it
            self._fail(self._limit)

    def eof_received(self) -> bool:
        self._eof = self._stopped = True
        return self._worker is not None and not self._closing  # R10: keep writing what is pending

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._last = self._loop.time()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Server shutdown: FIN when nothing is in flight, otherwise abort."""
        t = self._transport
        if self._worker is None and t.get_write_buffer_size() == 0:
            t.close()
        else:
            t.abort()

    # ---- httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._req = Request()
        self._url.clear()
        self._size = 0
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._size += len(url)
        if self._size > MAX_URL:
            self._limit = 414
            raise _Limit

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self._req
        self._size += len(name) + len(value) + 4
        if req.target is None:  # after headers complete these are chunked trailers: counted, not kept
            req.headers.append((name, value))
            if len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
                self._expect = True
        if len(req.headers) > MAX_HEADERS or self._size > MAX_HEADER_BYTES:
            self._limit = 431
            raise _Limit

    def on_headers_complete(self) -> None:
        req, p = self._req, self._parser
        req.target = b"".join(self._url)
        req.method = p.get_method()
        req.version = p.get_http_version()
        req.keep_alive = p.should_keep_alive() and not p.should_upgrade()
        if self._expect and req.version == "1.1" and self._worker is None and not self._closing:
            self._transport.write(_CONTINUE)  # R9

    def on_body(self, body: bytes) -> None:
        req = self._req
        if req.sha is None:
            req.sha = hashlib.sha256()
        req.sha.update(body)
        req.nbytes += len(body)

    def on_message_complete(self) -> None:
        req, self._req = self._req, None
        if not req.keep_alive:
            self._stopped = True
        req.kind, req.arg, req.chunked = route(req.target)
        self._submit(req)

    # ---- ordering (R3, R4, R6) --------------------------------------------------------------------
    def _fail(self, status: int) -> None:
        self._stopped = True
        self._req = None
        req = Request()
        req.kind, req.arg = ERROR, status
        self._submit(req)

    def _submit(self, req: Request) -> None:
        if self._closing:
            return
        if self._worker is None and not self._write_paused and self._immediate(req):
            self._send(req)
            return
        self._queue.append(req)
        if len(self._queue) >= MAX_PIPELINE and not self._read_paused and not self._stopped:
            self._read_paused = True
            self._transport.pause_reading()
        if self._worker is None:
            self._worker = self._loop.create_task(self._work())

    def _immediate(self, req: Request) -> bool:
        kind = req.kind
        if kind == HEALTH or kind == HEALTH_SET:
            return True
        if self._s.delay or kind == SLEEP:
            return False
        return kind != BYTES or req.arg <= len(PATTERN) or req.method == b"HEAD"

    async def _work(self) -> None:
        t, queue = self._transport, self._queue
        try:
            while queue and not self._closing:
                req = queue.popleft()
                if self._read_paused and len(queue) <= MAX_PIPELINE // 2 and not self._stopped:
                    self._read_paused = False
                    t.resume_reading()
                wait = 0.0 if req.kind in (HEALTH, HEALTH_SET) else self._s.delay
                if req.kind == SLEEP:
                    wait += req.arg / 1000.0
                if wait:
                    self._sleeping = True
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        self._sleeping = False
                        self._last = self._loop.time()
                await self._drained()
                if self._closing or t.is_closing():
                    return
                if req.kind == BYTES and req.method != b"HEAD" and req.arg > len(PATTERN):
                    await self._stream(req)
                else:
                    self._send(req)
            if self._eof and not self._closing:
                t.close()  # R10
        finally:
            self._worker = None

    async def _drained(self) -> None:
        while self._write_paused and not self._transport.is_closing():
            self._drain_waiter = waiter = self._loop.create_future()
            await waiter

    # ---- responses --------------------------------------------------------------------------------
    def _head(self, req: Request, code: int, ctype, length, chunked: bool = False) -> tuple[bytes, bool]:
        keep = req.keep_alive and req.kind != CLOSE and req.kind != ERROR
        if not keep:
            connection = b"close"
        elif req.version == "1.0":
            connection = b"keep-alive"
        else:
            connection = None
        return self._s.heads.build(code, ctype, length, chunked=chunked, connection=connection), keep

    def _send(self, req: Request) -> None:
        """Write the whole response for ``req`` (anything but a /bytes body larger than one PATTERN)."""
        if req.kind == HEALTH_SET:
            self._s.health = req.arg
        code, ctype, body = small_response(req, self._s.name, self._client, self._s.health)
        chunked = req.kind == BYTES and req.chunked and req.version == "1.1"
        length = req.arg if req.kind == BYTES else None if body is None else len(body)  # HEAD: body may be cut
        head, keep = self._head(req, code, ctype, length, chunked)
        if req.method == b"HEAD" or body is None:
            self._transport.write(head)
        elif chunked:
            framed = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
            self._transport.write(head + framed)
        else:
            self._transport.write(head + body)
        if not keep:
            self._finish()

    async def _stream(self, req: Request) -> None:
        """Write a /bytes body block by block under flow control (R5); never holds more than BLOCK."""
        t, remaining = self._transport, req.arg
        chunked = req.chunked and req.version == "1.1"
        head, keep = self._head(req, 200, OCTETS, remaining, chunked)
        t.write(head)
        view, size, blocks = memoryview(BLOCK), len(BLOCK), 0
        while remaining > 0:
            n = min(size, remaining)
            if chunked:
                t.write(b"%x\r\n" % n)
            t.write(BLOCK if n == size else view[:n])
            if chunked:
                t.write(b"\r\n")
            remaining -= n
            blocks += 1
            if self._write_paused:
                await self._drained()
            elif blocks % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # fairness: a fast reader must not starve other connections
                self._last = self._loop.time()
            if t.is_closing():
                return
        if chunked:
            t.write(b"0\r\n\r\n")
        if not keep:
            self._finish()

    # ---- closing (R7, R8) -------------------------------------------------------------------------
    def _finish(self) -> None:
        self._closing = self._stopped = True
        self._queue.clear()
        t = self._transport
        if self._eof or not t.can_write_eof():
            t.close()
            return
        t.write_eof()
        if self._read_paused:
            self._read_paused = False
            t.resume_reading()
        self._linger = self._loop.call_later(LINGER, t.close)

    def _on_timer(self) -> None:
        timeout = self._s.idle_timeout
        left = self._last + timeout - self._loop.time()
        if self._sleeping or left > 0:
            self._timer = self._loop.call_later(timeout if self._sleeping else left, self._on_timer)
            return
        self._timer = None
        self.close()


_SERVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def start_backend(
    name: str, host: str, port: int, delay: float = 0.0, *, idle_timeout: float = IDLE_TIMEOUT
) -> asyncio.Server:
    """Listen on host:port (0 = ephemeral, see ``server.sockets[0].getsockname()``) and serve the demo app."""
    if delay < 0 or idle_timeout <= 0:
        raise ValueError("delay must be >= 0 and idle_timeout > 0")
    shared = _Shared(name, float(delay), float(idle_timeout))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _BackendProtocol(shared), host, port, reuse_address=True, backlog=1024)
    _SERVERS[server] = shared
    return server


async def stop_backend(server: asyncio.Server) -> None:
    """Stop listening and close every connection of ``server`` (keep-alive ones included), then wait."""
    server.close()
    shared = _SERVERS.pop(server, None)
    if shared is not None:
        for conn in list(shared.conns):
            conn.close()
    await server.wait_closed()
