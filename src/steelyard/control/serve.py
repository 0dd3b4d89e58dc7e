"""``steelyard serve``: the process around a ``Runtime``. It prints its pid first, raises the
open-files limit, runs the runtime on uvloop until SIGTERM or SIGINT (SIGHUP reloads, SIGUSR1
prints the status), says what it serves, and stops gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from ..config import read_file
from .runtime import Runtime


async def serve_forever(
    config: Any,
    *,
    ready: Any = None,
    text: str | None = None,
    workers_override: int | None = None,
    freeze: bool = False,
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully. With ``workers`` > 1 this process
    is the control process and ``text`` (the configuration as read) goes to the workers.
    ``freeze``: once serving, exempt the objects built so far from garbage collection
    (``proxy.malloc.freeze_started``; the ``steelyard serve`` process)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runtime = Runtime(config)
    runtime.workers_override = workers_override

    def stopping() -> None:
        if runtime.hub is not None:  # (systemd signals every process of the unit: workers are not replaced)
            runtime.hub.closing = True
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    if config.workers > 1:
        from ..workers.master import WorkerHub

        runtime.hub = WorkerHub(runtime, config.workers, text if text is not None else read_file(config.source))
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(_print_status(runtime)))
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(runtime.reload_from_file()))
    await runtime.start()
    if runtime.hub is not None:
        try:
            await runtime.hub.start()
        except BaseException:
            await runtime.stop(grace=0)
            raise
        pids = ", ".join(str(w.pid) for w in runtime.hub.workers)
        print(f"steelyard: {config.workers} workers serving (pids {pids})", flush=True)
    if runtime.admin is not None:
        print(f"steelyard: admin API on http://{runtime.admin.host}:{runtime.admin.port}/api/v1/", flush=True)
    for name, dl in runtime.dns.items():
        kinds = "udp+tcp" if dl.tcp is not None else "udp"
        print(f"steelyard: dns {name} serving {dl.cfg.origin} on {dl.host}:{dl.port} ({kinds})", flush=True)
    for name, lst in runtime.listeners.items():
        print(f"steelyard: listener {name} serving {lst.mode} on {lst.host}:{lst.port}", flush=True)
    if freeze:
        from ..proxy import malloc

        malloc.freeze_started()
    if ready is not None:
        ready(runtime)
    await stop.wait()
    print("steelyard: stopping: no new connections, finishing in-flight requests", flush=True)
    await runtime.stop()
    print("steelyard: stopped", flush=True)


async def _print_status(runtime: Runtime) -> None:
    await runtime.refresh_stats()
    print(runtime.status_text(), flush=True)


def run(config: Any, text: str | None = None, workers_override: int | None = None) -> None:
    """Blocking entry point for ``steelyard serve``: uvloop when available."""
    from ..proxy import malloc
    from ..proxy.resources import raise_open_files_limit

    # first, the pid to signal (HUP: reload, USR1: status, TERM: stop); with workers, the control process's
    print(f"steelyard: pid {os.getpid()} (HUP reloads, USR1 prints the status, TERM stops)", flush=True)
    malloc.tune()  # (steady costs for large buffers: see proxy/malloc.py)
    soft, hard = raise_open_files_limit()  # (worker processes inherit it)
    print(f"steelyard: open files limit {soft} (hard limit {hard})", flush=True)
    main = serve_forever(config, text=text, workers_override=workers_override, freeze=True)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(main)
    else:
        uvloop.run(main)
