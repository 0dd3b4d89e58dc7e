"""A bounded HTTP/1.1 load generator for the demo lab (127.0.0.1 only).

Invariants: at most ``requests`` requests are sent, over ``concurrency`` keep-alive
connections, and nothing is sent after ``deadline`` (loop time); each response is read
whole (Content-Length or an empty body) before the connection sends the next request;
a failed or timed-out exchange counts as an error and its connection is replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

EXCHANGE_TIMEOUT = 10.0  # seconds for one request's whole response


@dataclass
class Drive:
    """What one run of the generator saw: (server, seconds) per answered request, and errors."""

    answers: list[tuple[str, float]] = field(default_factory=list)
    errors: int = 0


def _parse_head(head: bytes) -> tuple[int, str, int]:
    """(status, X-Served-By, Content-Length) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    served_by, length = "?", 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "x-served-by":
            served_by = value.strip()
        elif name == "content-length":
            length = int(value)
    return status, served_by, length


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, str]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, served_by, length = _parse_head(head)
    if length:
        await reader.readexactly(length)
    return status, served_by


async def drive(
    host: str, port: int, path_of: Callable[[int], str], *, requests: int, concurrency: int, deadline: float
) -> Drive:
    """Send ``requests`` GETs (``path_of(i)`` for the i-th) through ``host:port``."""
    loop = asyncio.get_running_loop()
    out = Drive()
    next_i = 0

    async def client() -> None:
        nonlocal next_i
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while next_i < requests and loop.time() < deadline:
                i = next_i
                next_i += 1
                request = f"GET {path_of(i)} HTTP/1.1\r\nHost: lab\r\n\r\n".encode()
                start = time.perf_counter()
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(asyncio.open_connection(host, port), EXCHANGE_TIMEOUT)
                    status, served_by = await asyncio.wait_for(_exchange(*conn, request), EXCHANGE_TIMEOUT)
                except (
                    OSError,
                    asyncio.TimeoutError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    ValueError,
                    IndexError,
                ):
                    out.errors += 1
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    continue
                if 200 <= status < 300:
                    out.answers.append((served_by, time.perf_counter() - start))
                else:
                    out.errors += 1
        finally:
            if conn is not None:
                conn[1].close()

    await asyncio.gather(*(client() for _ in range(max(1, concurrency))))
    return out
