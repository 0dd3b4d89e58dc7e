"""A worker process as the control process sees it (``master.WorkerHub`` keeps one per worker)."""

from __future__ import annotations

import asyncio
from typing import Any

from .channel import Channel


class Worker:
    """One worker process as the control process sees it."""

    def __init__(self, index: int, generation: int, row: int, initial: bool) -> None:
        self.index, self.generation, self.row = index, generation, row
        self.initial = initial  # started by start() or a reload, which report its failure to start
        self.proc: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.stopping = False
        self.started = asyncio.get_running_loop().time()
        self.stats: dict[str, Any] = {}  # the last counters it reported
        self.listeners: dict[str, list] = {}  # the last listener counters it reported
        self.open: dict[str, int] = {}  # and its open connections per listener
        self.failure = ""  # why it could not start (its own words), if it said
        self.reader: asyncio.Task | None = None
        self.asked: dict[int, asyncio.Future] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0
