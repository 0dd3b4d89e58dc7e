"""Active health checks of one pool: one timer heap and one task, not a task per server.

``CheckScheduler`` keeps every checked server's next due time in a heap; its task sleeps
until the earliest, starts each due check as a short task of its own (connect, ask, close),
and the check, when it ends, hands its result to the keeper and schedules the server's next
one (``interval``, or ``failing_interval`` while failing, each varied by ± ``jitter``).
With 10,000 servers that is 10,000 heap entries instead of 10,000 sleeping coroutines (whose
frames, futures and timer handles a full garbage collection walks: 0.2–0.8 s measured), and
only the checks in flight exist as tasks.

The first round is spread over the jitter, and a large pool's over up to one interval (at
most ``FIRST_ROUND_RATE`` checks a second), so 10,000 servers never connect at once.
Invariants: a server has at most one check in flight or due; a forgotten server (removed
from the pool) is not checked again and its result, if one was in flight, is dropped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count
from typing import Any

from ..core.health import ServerState
from .probe import probe

FIRST_ROUND_RATE = 2000.0  # checks a second at most while a pool's first round is spread out


class CheckScheduler:
    def __init__(
        self,
        check: Any,
        on_result: Callable[[ServerState, bool | None, str], None],
        *,
        loop: asyncio.AbstractEventLoop,
        rng: random.Random,
    ) -> None:
        self.check, self.on_result, self.loop, self.rng = check, on_result, loop, rng
        self.heap: list[tuple[float, int, ServerState]] = []  # (due, tie-breaker, server)
        self.order = count()
        self.members: set[ServerState] = set()
        self.running: set[asyncio.Task] = set()  # checks in flight
        self.task: asyncio.Task | None = None
        self.wake: asyncio.Future[None] | None = None  # set while the scheduler sleeps
        self.sleeping_until = 0.0

    def start(self, states: list[ServerState]) -> asyncio.Task:
        check = self.check
        spread = max(check.jitter * check.interval, min(check.interval, len(states) / FIRST_ROUND_RATE))
        now = self.loop.time()  # (one reading: the round spreads over ``spread`` from now, however long this takes)
        for st in states:
            self.add(st, spread, now)
        self.task = self.loop.create_task(self._run())
        return self.task

    def add(self, st: ServerState, spread: float | None = None, now: float | None = None) -> None:
        """Check ``st`` from now on (its first check within ``spread``, default the jitter)."""
        check = self.check
        self.members.add(st)
        width = check.jitter * check.interval if spread is None else spread
        self._due(st, (self.loop.time() if now is None else now) + self.rng.uniform(0, width))

    def forget(self, st: ServerState) -> None:
        self.members.discard(st)  # (its heap entry is skipped when it comes up)

    def stop(self) -> None:
        for task in (self.task, *self.running):
            if task is not None:
                task.cancel()
        self.running.clear()
        self.heap.clear()

    def _due(self, st: ServerState, when: float) -> None:
        heappush(self.heap, (when, next(self.order), st))
        if self.wake is not None and when < self.sleeping_until and not self.wake.done():
            self.wake.set_result(None)

    async def _run(self) -> None:
        loop, heap = self.loop, self.heap
        while True:
            now = loop.time()
            while heap and heap[0][0] <= now:
                st = heappop(heap)[2]
                if st in self.members:
                    task = loop.create_task(self._one(st))
                    self.running.add(task)
                    task.add_done_callback(self.running.discard)
            self.wake = loop.create_future()
            self.sleeping_until = heap[0][0] if heap else now + 3600.0
            handle = loop.call_at(self.sleeping_until, _wake, self.wake)
            try:
                await self.wake
            finally:
                handle.cancel()
                self.wake = None

    async def _one(self, st: ServerState) -> None:
        check = self.check
        ok, why = await probe(st.server, check)
        if st not in self.members:
            return
        try:
            self.on_result(st, ok, why)
        finally:  # (whatever happened, the server stays checked)
            wait = check.failing_interval if st.check is not None and st.check.failing else check.interval
            self._due(st, self.loop.time() + wait * (1 + self.rng.uniform(-check.jitter, check.jitter)))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
