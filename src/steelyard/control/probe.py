"""One active health check of one server: a TCP connect, or an HTTP request whose status
(and optionally body) must match. Returns ``(ok, why)``; ``why`` is short and for people.

An HTTP check sends ``GET path HTTP/1.1`` with ``Connection: close`` and reads at most
``MAX_RESPONSE`` bytes; the whole check, connect included, must finish within ``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from ..core.model import Server
from ..proxy.resources import WARNER, is_local
from ..units import format_duration

MAX_RESPONSE = 64 * 1024
log = logging.getLogger("steelyard.health")


class _Response:
    """httptools callbacks collecting the status and (de-chunked) body."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.head = self.done = False
        self.framed = False  # Content-Length or chunked: the body has a known end

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.head = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


async def probe(server: Server, check: Any) -> tuple[bool | None, str]:
    """Never raises (but for cancellation): every problem is a failed check with its reason,
    except a local shortage (no descriptor left here), which is no verdict at all (None)."""
    try:
        async with asyncio.timeout(check.timeout):  # (no extra task per check, unlike wait_for)
            return await _probe(server, check)
    except TimeoutError:
        return False, f"no answer within {format_duration(check.timeout)}"
    except ConnectionRefusedError:
        return False, "connection refused"
    except OSError as exc:
        if is_local(exc):
            WARNER.warn(f"health check of {server.name} ({server.address})", exc)
            return None, exc.strerror or str(exc)
        return False, exc.strerror or str(exc)
    except Exception as exc:  # a check must never end its server's check loop
        log.exception("health check of %s failed unexpectedly", server.name)
        return False, f"check failed: {exc!r}"


class _Exchange(asyncio.Protocol):
    """One HTTP check on its own connection: a protocol, not streams (a check is a few
    callbacks; at 5,000 checks a second the stream objects were most of its cost)."""

    def __init__(self, check: Any, request: bytes, done: asyncio.Future[tuple[bool, str]]) -> None:
        self.check, self.request, self.done = check, request, done
        self.got = _Response()
        self.parser = HttpResponseParser(self.got)
        self.size = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.size += len(data)
        path = self.check.path
        if self.size > MAX_RESPONSE:
            return self._end(False, f"response to {path} larger than {MAX_RESPONSE // 1024} KiB")
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            return self._end(*self._verdict())  # a 101: its status says what is wrong
        except HttpParserError as exc:
            return self._end(False, f"malformed response to {path}: {exc}")
        if self.got.done:
            self._end(*self._verdict())

    def eof_received(self) -> bool:
        # the end of a close-delimited body, or of a broken response
        if not self.done.done():
            self._end(*self._verdict())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(self._verdict())

    def _end(self, ok: bool, why: str) -> None:
        if not self.done.done():
            self.done.set_result((ok, why))
        self.transport.close()

    def _verdict(self) -> tuple[bool, str]:
        got, check, path = self.got, self.check, self.check.path
        if not got.head:
            return False, f"connection closed without a response to {path}"
        status = self.parser.get_status_code()
        if not got.done and got.framed and status != 101:
            return False, f"response to {path} cut short"
        if not any(lo <= status <= hi for lo, hi in check.status_ranges):
            return False, f"HTTP {status} on {path} (expected {check.expect_status})"
        if check.expect_body is not None and check.expect_body.encode() not in b"".join(got.body):
            return False, f"HTTP {status} on {path} without {check.expect_body!r} in the body"
        return True, f"HTTP {status} on {path}"


async def _probe(server: Server, check: Any) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    if check.type == "tcp":
        transport, _ = await loop.create_connection(asyncio.Protocol, server.host, server.port)
        transport.close()
        return True, "TCP connect ok"
    host = check.host or server.address
    request = b"GET %b HTTP/1.1\r\nHost: %b\r\nUser-Agent: steelyard-health\r\nConnection: close\r\n\r\n" % (
        check.path.encode(),
        host.encode(),
    )
    done: asyncio.Future[tuple[bool, str]] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Exchange(check, request, done), server.host, server.port)
    try:
        return await done
    finally:
        transport.close()
