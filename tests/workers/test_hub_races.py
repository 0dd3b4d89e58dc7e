"""WorkerHub races, run in-process (a real control-process Runtime and real worker processes
on 127.0.0.1:0); the race windows are widened with an injected delay."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from steelyard.config import parse_config
from steelyard.control.runtime import Runtime
from steelyard.workers.master import WorkerHub
from steelyard.workers.slots import SharedLoad, SlotTable

TEXT = """
workers = 2
shutdown_grace = "2s"

[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"

[[pool]]
name = "app"
servers = [ { address = "127.0.0.1:9", name = "s1" } ]
"""


async def _control(tmp_path):
    path = tmp_path / "steelyard.toml"
    path.write_text(TEXT)
    rt = Runtime(parse_config(TEXT, str(path)))
    rt.hub = WorkerHub(rt, 2, TEXT)
    await rt.start()
    await rt.hub.start()
    return rt


async def _until(cond, limit: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def _kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("action", ["reload", "stop"])
def test_a_restart_in_flight_during_a_reload_or_stop_is_stopped_too(tmp_path, action) -> None:
    """A worker being restarted when a reload or a stop begins is stopped too once it has started:
    no worker of an old generation keeps serving, none outlives the hub."""

    async def scenario() -> list:
        rt = await _control(tmp_path)
        hub = rt.hub
        spawn, gate = hub._spawn, asyncio.Event()

        async def slow_spawn(index, generation, text, initial=False):
            if not initial:
                await gate.wait()  # (stands for a slow fork/exec + channel open)
            return await spawn(index, generation, text, initial)

        hub._spawn = slow_spawn
        pids = [w.pid for w in hub.workers]
        os.kill(pids[0], signal.SIGKILL)
        assert await _until(lambda: len(hub.workers) == 1)
        await asyncio.sleep(0.4)  # past the young back-off: _watch waits in _spawn now
        try:
            if action == "reload":
                await rt.reload(rt.config, TEXT)
                gate.set()
                await _until(lambda: sum(w.ready.done() for w in hub.workers) == len(hub.workers), 10)
                await asyncio.sleep(3.0)  # the previous generation has finished (grace 2s)
                leftover = [
                    (w.generation, w.pid) for w in hub.workers if w.generation != hub.generation and not w.stopping
                ]
            else:
                stopping = asyncio.ensure_future(rt.stop(grace=1))
                await asyncio.sleep(0.1)
                gate.set()
                await stopping
                # the restarted worker is stopped once it has started: its exit is the event (a
                # worker left running would never exit)
                await _until(lambda: all(w.proc.returncode is not None for w in hub.workers), 10)
                leftover = [(w.generation, w.pid) for w in hub.workers if w.proc.returncode is None]
            pids += [w.pid for w in hub.workers]
            return leftover
        finally:
            if action == "reload":
                await rt.stop(grace=0)
            _kill_all(pids + [w.pid for w in hub.workers])

    import uvloop

    leftover = uvloop.run(scenario())
    assert leftover == []


def test_a_worker_on_a_high_row_is_seen_by_the_others() -> None:
    table = SlotTable()
    try:
        col = table.column(("app", "a"))
        rows = [table.take_row() for _ in range(6)]  # three overlapping generations of two
        w5 = SharedLoad(table.cells, rows[4], col)
        w6 = SharedLoad(table.cells, rows[5], col)
        w6.active = 3
        assert w5.remote == 3
    finally:
        table.close()


def test_a_removed_servers_column_is_not_reused_while_old_workers_may_count_on_it(tmp_path) -> None:
    """A reload drops pool "old" (server k) and adds pools "b" and "c": while the previous
    generation may still serve "old", k's column goes to no new server."""
    old_text = TEXT.replace('name = "app"', 'name = "old"').replace('pool = "app"', 'pool = "old"')
    new_text = (
        TEXT
        + """
[[pool]]
name = "b"
servers = [ { address = "127.0.0.1:10", name = "sb" } ]

[[pool]]
name = "c"
servers = [ { address = "127.0.0.1:11", name = "sc" } ]
"""
    )
    new_text = new_text.replace(
        'name = "app"\nservers = [ { address = "127.0.0.1:9", name = "s1" } ]\n',
        'name = "app"\nservers = [ { address = "127.0.0.1:12", name = "s2" } ]\n',
    )

    async def scenario():
        path = tmp_path / "steelyard.toml"
        path.write_text(old_text)
        rt = Runtime(parse_config(old_text, str(path)))
        rt.hub = WorkerHub(rt, 2, old_text)
        await rt.start()  # (no worker processes: only the control process's bookkeeping)
        k = rt.health["old"].health.states[0].server
        k_col = k.load.col
        old_worker_k = SharedLoad(rt.hub.slots.cells, 1, k_col)  # an old worker's k
        await rt.reload(parse_config(new_text, str(path)))
        old_worker_k.active += 1  # the old generation still serves "old" -> k
        cols = {name: keeper.health.states[0].server.load for name, keeper in rt.health.items()}
        got = {name: (load.col, load.active) for name, load in cols.items()}
        await rt.stop(grace=0)
        return k_col, got

    import uvloop

    k_col, got = uvloop.run(scenario())
    assert all(col != k_col for col, _ in got.values()), (k_col, got)
    assert all(active == 0 for _, active in got.values()), (k_col, got)
