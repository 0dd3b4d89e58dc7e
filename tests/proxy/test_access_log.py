"""steelyard.proxy.http.access: the access log never blocks the balancer nor grows without
bound. Lines waiting for a writer that is still busy are capped (the rest dropped and counted),
and a failed write is reported, not lost silently."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace

from steelyard.proxy.http import access
from steelyard.proxy.http.access import MAX_PENDING, AccessLog

EX = SimpleNamespace(t_begin=1.0, method=b"GET", url=b"/", resp_bytes=2, pool=None, tries=0)
DOWN = SimpleNamespace(ip=b"127.0.0.1")


def test_lines_past_the_cap_are_dropped_and_counted_while_the_disk_is_stuck(tmp_path, caplog):
    async def scenario() -> tuple[int, int]:
        log = AccessLog(str(tmp_path / "access.log"), asyncio.get_running_loop())
        stuck, entered = threading.Event(), threading.Event()
        real_write = log._write

        def slow_write(batch):
            entered.set()
            stuck.wait(10)
            real_write(batch)

        log._write = slow_write  # type: ignore[method-assign]
        for _ in range(access.BATCH):  # the first batch goes to the (stuck) writer
            log.record(DOWN, EX, 200, None)
        log.record(DOWN, EX, 200, None)
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        for _ in range(MAX_PENDING + 500):
            log.record(DOWN, EX, 200, None)
        waiting, dropped = len(log.pending), log.dropped
        stuck.set()
        await log.close()
        return waiting, dropped

    with caplog.at_level(logging.ERROR, logger="steelyard.access"):
        waiting, dropped = asyncio.run(scenario())
    assert waiting == MAX_PENDING and dropped == 501
    written = (tmp_path / "access.log").read_text().count("\n")
    assert written == access.BATCH + MAX_PENDING


def test_a_failed_write_is_reported_with_the_lines_it_lost(tmp_path, caplog):
    async def scenario() -> None:
        log = AccessLog(str(tmp_path / "access.log"), asyncio.get_running_loop())

        def full_disk(batch):
            raise OSError(28, "No space left on device")

        log._write = full_disk  # type: ignore[method-assign]
        for _ in range(access.BATCH + 1):
            log.record(DOWN, EX, 200, None)
        await log.writing  # type: ignore[misc]

    with caplog.at_level(logging.ERROR, logger="steelyard.access"):
        try:
            asyncio.run(scenario())
        except OSError:
            pass
    assert any("4096 lines dropped" in r.getMessage() and "No space" in r.getMessage() for r in caplog.records)
