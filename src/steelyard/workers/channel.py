"""The control process and a worker talk over a Unix socket pair, one JSON object per line.

Control process → worker: ``hello`` (the configuration text, the inherited descriptors, the
pools' current views), ``pools`` (new views: ``views``), ``stats`` (a request for counters,
answered with the same ``id``), ``stop`` (finish in-flight work, then exit).
Worker → control process: ``ready`` (listeners serving), ``failing`` (passive health: a server
failed too often in a row), ``stats`` (the answer), ``bye`` (final counters, just before exit).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

LIMIT = 64 * 1024 * 1024  # one message at most (a stats answer of thousands of servers)


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LIMIT)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the other side is gone."""
        try:
            line = await self.reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            return None
        if not line.endswith(b"\n"):
            return None
        return json.loads(line)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except ConnectionError:
            pass

    def close(self) -> None:
        self.writer.close()
