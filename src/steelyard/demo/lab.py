"""``steelyard demo`` (three demo backends of different speeds behind the balancer, in one
process) and ``steelyard backend`` (one demo backend on its own).

The default pool balances round robin; each algorithm also has a pool of its own
under a path prefix (``/weighted/``, ``/least_conn/`` ...), so one running demo
shows every algorithm side by side. State is in memory; nothing else is needed.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ..config import parse_config
from ..control.runtime import Runtime
from .backend import start_backend, stop_backend

BACKENDS = (("fast", 0.0), ("medium", 0.02), ("slow", 0.08))
ALGORITHMS = ("weighted_round_robin", "ip_hash", "consistent_hash", "least_conn", "least_time", "random", "p2c")
PREFIX = {"weighted_round_robin": "weighted", "consistent_hash": "hash"}


def demo_config(host: str, port: int, backend_ports: list[int], admin: tuple[str, int] | None = None) -> dict:
    weights = (5, 1, 1)
    servers = [
        {"address": f"127.0.0.1:{p}", "name": name, "weight": w}
        for p, (name, _), w in zip(backend_ports, BACKENDS, weights)
    ]
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    health = {"path": "/healthz", "interval": "1s", "timeout": "500ms", "rise": 2, "fall": 2}
    pools = [{"name": "app", "algorithm": "round_robin", "servers": servers, "health": health, "slow_start": "10s"}]
    routes = []
    for algo in ALGORITHMS:
        pool = {"name": algo, "algorithm": algo, "servers": servers, "health": health}
        if algo == "consistent_hash":
            pool["hash_on"] = "uri"
        pools.append(pool)
        routes.append({"path_prefix": f"/{PREFIX.get(algo, algo)}/", "pool": algo})
    config = {
        "shutdown_grace": "2s",
        "listener": [{"name": "web", "bind": bind, "pool": "app", "route": routes}],
        "pool": pools,
    }
    if admin is not None:  # (on loopback: reads and writes need no token)
        config["admin"] = {"bind": f"[{admin[0]}]:{admin[1]}" if ":" in admin[0] else f"{admin[0]}:{admin[1]}"}
    return config


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


def _tips(host: str, port: int, medium_port: int, admin: str | None = None) -> str:
    base = _url(host, port)
    lines = [f"steelyard demo: balancer on {base}, backends {', '.join(n for n, _ in BACKENDS)} (0, 20 and 80 ms)"]
    if admin is not None:
        lines += [
            f"  dashboard:  {admin}/",
            f"  metrics:    {admin}/metrics",
            f"  ctl:        .venv/bin/steelyard ctl --admin {admin} servers app    (or `. .venv/bin/activate` first)",
            f"              .venv/bin/steelyard ctl --admin {admin} drain app slow",
        ]
    lines += [
        "Things to try:",
        f"  curl -si {base}/ | grep X-Served-By              # round robin: run it a few times",
        f"  for i in $(seq 14); do curl -s -D- -o /dev/null {base}/weighted/ | grep -i x-served-by; done"
        " | sort | uniq -c   # 5:1:1",
        f"  curl -s -D- -o /dev/null {base}/hash/some/key | grep -i x-served-by   # same URI, same server",
        f"  wrk -t2 -c32 -d5s --latency {base}/least_time/   # compare with {base}/ (round robin):",
        "      least_time and least_conn keep most requests off the slow backend",
        f"  curl -s {base}/bytes/1048576 | sha256sum           # streamed download",
        f"  curl -s http://127.0.0.1:{medium_port}/healthz/set/500   # fail medium's health check: it leaves",
        f"      kill -USR1 {os.getpid()} prints every server's state; /healthz/set/200 brings it back (slow start)",
        "Prefixes: /weighted/ /ip_hash/ /hash/ /least_conn/ /least_time/ /random/ /p2c/ ; Ctrl-C stops.",
    ]
    return "\n".join(lines)


async def _demo(host: str, port: int, first_backend_port: int, admin: tuple[str, int] | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backends = []
    for i, (name, delay) in enumerate(BACKENDS):
        backend_port = first_backend_port + i if first_backend_port else 0  # 0: ephemeral ports
        backends.append(await start_backend(name, "127.0.0.1", backend_port, delay=delay))
    ports = [b.sockets[0].getsockname()[1] for b in backends]
    runtime = Runtime(parse_config(demo_config(host, port, ports, admin), source="<string>"))  # (no state file)
    await runtime.start()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(runtime.status_text(), flush=True))
    shown = _url(runtime.admin.host, runtime.admin.port) if runtime.admin is not None else None
    print(_tips(host, runtime.listeners["web"].port, ports[1], shown), flush=True)
    await stop.wait()
    await runtime.stop()
    for b in backends:
        b.close()
    print("steelyard demo: stopped", flush=True)


def run_demo(
    host: str = "127.0.0.1", port: int = 8080, first_backend_port: int = 9001, admin: tuple[str, int] | None = None
) -> None:
    import uvloop

    uvloop.run(_demo(host, port, first_backend_port, admin))


async def _serve_backend(name: str, host: str, port: int, delay: float) -> None:
    server = await start_backend(name, host, port, delay)
    bound = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    # (once this line is out, SIGTERM is a clean stop: the handlers are in place)
    print(f"backend {name} listening on {shown}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await stop_backend(server)


def run_backend(name: str, host: str, port: int, delay: float = 0.0) -> None:
    """Blocking: serve until SIGINT/SIGTERM on uvloop when installed, then return normally (exit 0)."""
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(_serve_backend(name, host, port, delay))
        else:
            asyncio.run(_serve_backend(name, host, port, delay))
    except KeyboardInterrupt:  # SIGINT before the handler was installed
        pass
