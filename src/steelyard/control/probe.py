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
        return await asyncio.wait_for(_probe(server, check), check.timeout)
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


async def _probe(server: Server, check: Any) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        if check.type == "tcp":
            return True, "TCP connect ok"
        host = check.host or server.address
        writer.write(
            b"GET %b HTTP/1.1\r\nHost: %b\r\nUser-Agent: steelyard-health\r\nConnection: close\r\n\r\n"
            % (check.path.encode(), host.encode())
        )
        got = _Response()
        parser = HttpResponseParser(got)
        size = 0
        while not got.done:
            data = await reader.read(16384)
            if not data:
                break  # EOF: the end of a close-delimited body, or of a broken response
            size += len(data)
            if size > MAX_RESPONSE:
                return False, f"response to {check.path} larger than {MAX_RESPONSE // 1024} KiB"
            try:
                parser.feed_data(data)
            except HttpParserUpgrade:
                break  # a 101: its status says what is wrong below
            except HttpParserError as exc:
                return False, f"malformed response to {check.path}: {exc}"
        if not got.head:
            return False, f"connection closed without a response to {check.path}"
        status = parser.get_status_code()
        if not got.done and got.framed and status != 101:
            return False, f"response to {check.path} cut short"
        if not any(lo <= status <= hi for lo, hi in check.status_ranges):
            return False, f"HTTP {status} on {check.path} (expected {check.expect_status})"
        if check.expect_body is not None and check.expect_body.encode() not in b"".join(got.body):
            return False, f"HTTP {status} on {check.path} without {check.expect_body!r} in the body"
        return True, f"HTTP {status} on {check.path}"
    finally:
        writer.close()
