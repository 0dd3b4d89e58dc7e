"""The control-plane parts of ``bench/scale.py``: loop stalls under change, the admin API,
active health checks and reload, each over real steelyard objects in this process."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter, deque
from typing import Any

import uvloop

from steelyard.config import parse_config
from steelyard.control import health as health_module
from steelyard.control.changes import RuntimeChanges
from steelyard.control.health import PoolHealthKeeper
from steelyard.control.runtime import Runtime
from steelyard.core.health import Hysteresis, ServerState
from steelyard.core.model import Server
from steelyard.proxy import malloc

ALGORITHMS = ("round_robin", "weighted_round_robin", "least_conn", "least_time", "p2c", "random", "ip_hash")


def pool_config(n: int, algorithm: str = "round_robin", health: dict | None = None, pools: int = 1) -> Any:
    """``pools`` pools of ``n`` servers on 127.0.0.1 (ports 20000 + i: nothing listens there
    unless a bench starts something), one HTTP listener on an ephemeral port."""
    pool_list = []
    for p in range(pools):
        pool: dict[str, Any] = {
            "name": f"p{p}",
            "algorithm": algorithm,
            "servers": [{"name": f"s{i}", "address": f"127.0.0.1:{20000 + i}"} for i in range(n)],
        }
        if health is not None:
            pool["health"] = health
        pool_list.append(pool)
    return parse_config(
        {
            "listener": [{"name": "web", "bind": "127.0.0.1:0", "mode": "http", "pool": "p0"}],
            "pool": pool_list,
            "admin": {"bind": "127.0.0.1:0"},
        }
    )


class LoopWatch:
    """The longest time the loop went without running a 1 ms timer (a stall), while running;
    and the longest cyclic garbage collection meanwhile (``gc_worst``, seconds)."""

    def __init__(self) -> None:
        self.worst = self.gc_worst = 0.0
        self.gc_started = 0.0
        self.lags: list[float] = []
        self.task: asyncio.Task | None = None

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self.gc_started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            lag = loop.time() - t - 0.001
            self.lags.append(lag)
            self.worst = max(self.worst, lag)

    def __enter__(self) -> LoopWatch:
        self.task = asyncio.get_running_loop().create_task(self._run())
        gc.callbacks.append(self._gc)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        gc.callbacks.remove(self._gc)


class Ex:
    """What ``PoolRuntime.pick`` needs from an exchange (pools hashing on the client address)."""

    def hash_key(self, kind: Any, name: Any) -> None:
        return None


class Ctx:
    __slots__ = ("client_ip", "key")

    def __init__(self, ip: str) -> None:
        self.client_ip, self.key = ip, None


async def traffic(pool: Any, stop: asyncio.Event, counter: list[int]) -> None:
    """Requests flowing: picks with an in-flight count held for ~5 ms, 100 per loop turn."""
    loop = asyncio.get_running_loop()
    rng = random.Random(5)
    ctxs = [Ctx(f"172.16.{i >> 8}.{i & 255}") for i in range(4096)]
    ex = Ex()
    held: deque[tuple[float, Any, Any]] = deque()
    while not stop.is_set():
        now = loop.time()
        for _ in range(100):
            s = pool.pick(ctxs[rng.getrandbits(12)], ex)
            if s is not None:
                s.load.active += 1
                held.append((now, s, pool.on_done))
        while held and now - held[0][0] > 0.005:
            _, s, on_done = held.popleft()
            s.load.active -= 1
            s.load.requests += 1
            if on_done is not None:
                on_done(s, True, 0.005)
        counter[0] += 100
        await asyncio.sleep(0)
    for _, s, _ in held:
        s.load.active -= 1


def timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000


async def stall_bench(n: int) -> None:
    print(f"A {n:,}-server pool, requests flowing (picks in the loop); per change: ms the call took")
    print("(median / max), and the longest loop stall over the whole run.\n")
    head = ("algorithm", "health flap", "weight change", "add server", "remove server", "longest stall", "longest GC")
    print("| " + " | ".join(head) + " | picks/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for algorithm in ALGORITHMS:
        await _stall_one(n, algorithm)


async def _stall_one(n: int, algorithm: str) -> None:
    loop = asyncio.get_running_loop()
    cfg = pool_config(n, algorithm).pools[0]
    rt = Runtime(pool_config(1))
    pool = rt.make_pool(cfg, loop)
    servers = [Server(f"s{i}", "127.0.0.1", 20000 + i) for i in range(n)]
    states = [ServerState(s, check=Hysteresis(2, 3)) for s in servers]
    keeper = PoolHealthKeeper(pool, cfg, states, loop=loop, rng=random.Random(1))
    rt.pools, rt.health = {cfg.name: pool}, {cfg.name: keeper}
    changes = RuntimeChanges(rt, None)
    keeper.start()  # (the first build, in line: start-up)
    malloc.freeze_started()  # (as `steelyard serve` does once serving)
    health_module.log.disabled = True
    stop, counter = asyncio.Event(), [0]
    times: dict[str, list[float]] = {"flap": [], "weight": [], "add": [], "remove": []}
    rng = random.Random(2)
    with LoopWatch() as watch:
        load = loop.create_task(traffic(pool, stop, counter))
        t0 = time.perf_counter()
        for round_ in range(40):
            st = states[rng.randrange(n)]
            for ok in (False, False, False, True, True):  # fall = 3 then rise = 2: two publishes

                def check(st: ServerState = st, ok: bool = ok) -> None:
                    if keeper.health.check_result(st, ok, "bench", loop.time()):
                        keeper.publish()

                times["flap"].append(timed(check))
                await asyncio.sleep(0.005)
            name = f"s{rng.randrange(n)}"
            weight = {"weight": rng.randint(2, 5)}
            times["weight"].append(timed(changes.update_server, cfg.name, name, weight))
            await asyncio.sleep(0.005)
            if round_ % 4 == 0:
                body = {"address": f"127.0.0.2:{30000 + round_}", "name": f"new{round_}"}
                times["add"].append(timed(changes.add_server, cfg.name, body))
                await asyncio.sleep(0.005)
                times["remove"].append(timed(changes.remove_server, cfg.name, f"new{round_}"))
                await asyncio.sleep(0.005)
        stop.set()
        await load
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.3)  # a hash table still building in a thread finishes meanwhile
    keeper.stop()
    health_module.log.disabled = False
    gc.unfreeze()
    gc.collect()

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):.1f} / {max(xs):.1f}" if xs else "-"

    row = [cell(times[k]) for k in ("flap", "weight", "add", "remove")]
    print(
        f"| {algorithm} | "
        + " | ".join(row)
        + f" | {watch.worst * 1000:.1f} ms | {watch.gc_worst * 1000:.1f} ms | {counter[0] / elapsed:,.0f} |"
    )


def _http(method: str, url: str, body: dict | None = None) -> tuple[float, int, int]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        size = len(resp.read())
        return (time.perf_counter() - t0) * 1000, resp.status, size


async def admin_bench(n: int) -> None:
    rt = Runtime(pool_config(n))
    health_module.log.disabled = True
    await rt.start()
    malloc.freeze_started()
    base = f"http://127.0.0.1:{rt.admin.port}"
    stop, counter = asyncio.Event(), [0]
    load = asyncio.get_running_loop().create_task(traffic(rt.pools["p0"], stop, counter))
    calls = [
        ("POST", "/api/v1/pools/p0/servers", {"address": "127.0.0.2:30000", "name": "new"}),
        ("PATCH", "/api/v1/pools/p0/servers/s17", {"weight": 3}),
        ("DELETE", "/api/v1/pools/p0/servers/new", None),
        ("GET", "/api/v1/pools", None),
        ("GET", "/api/v1/pools/p0/servers/s17", None),
        ("GET", "/api/v1/status", None),
        ("GET", "/api/v1/pools/p0", None),
        ("GET", "/api/v1/pools/p0?limit=100", None),
        ("GET", "/metrics", None),
    ]
    print(f"One pool of {n:,} servers, requests flowing; each call's time end to end (best of 3),")
    print("and the longest loop stall while it ran.\n")
    print("| call | ms | longest stall | bytes |")
    print("|---|---:|---:|---:|")
    for method, path, body in calls:
        best, worst_stall, size = float("inf"), 0.0, 0
        for _ in range(3):
            with LoopWatch() as watch:
                ms, status, size = await asyncio.to_thread(_http, method, base + path, body)
                await asyncio.sleep(0.01)
            best, worst_stall = min(best, ms), max(worst_stall, watch.worst)
            if method in ("POST", "DELETE"):
                break  # (once: the second would conflict)
        print(f"| `{method} {path}` | {best:.1f} | {worst_stall * 1000:.1f} ms | {size:,} |")
    stop.set()
    await load
    await rt.stop(grace=0)
    health_module.log.disabled = False
    gc.unfreeze()


BACKEND = r"""
import asyncio, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d):
        if b"\r\n\r\n" in d:
            self.t.write(ANSWER); self.t.close()
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
"""


def checks_bench(n: int, seconds: float = 8.0) -> None:
    backend = subprocess.Popen([sys.executable, "-c", BACKEND], stdout=subprocess.PIPE, text=True)
    try:
        port = int(backend.stdout.readline())  # type: ignore[union-attr]
        for kind in ("http", "tcp"):
            uvloop.run(_checks(n, port, kind, seconds))
    finally:
        backend.kill()
        backend.wait()


async def _checks(n: int, port: int, kind: str, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    health = {"type": kind, "interval": "2s", "timeout": "1s"} if kind == "tcp" else {"interval": "2s", "path": "/"}
    cfg = pool_config(1, health=health).pools[0]
    rt = Runtime(pool_config(1))
    pool = rt.make_pool(cfg, loop)
    servers = [Server(f"s{i}", "127.0.0.1", port) for i in range(n)]  # (one target answers for all)
    keeper = PoolHealthKeeper.from_config(
        pool, cfg.model_copy(update={"servers": cfg.servers * n}), servers, loop=loop, rng=random.Random(1)
    )
    results = [0, 0]
    whys: Counter[str] = Counter()
    check_result = keeper.health.check_result

    def counted(st: Any, ok: bool, why: str, now: float) -> bool:
        results[ok] += 1
        if not ok:
            whys[why] += 1
        return check_result(st, ok, why, now)

    keeper.health.check_result = counted  # type: ignore[method-assign]
    health_module.log.disabled = True
    with LoopWatch() as watch:
        keeper.start()
        malloc.freeze_started()  # (as `steelyard serve` does once serving)
        await asyncio.sleep(2.5)  # the first round is spread over the interval's jitter, then steady
        results[:] = [0, 0]
        watch.worst = watch.gc_worst = 0.0
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        done = list(results)
    keeper.stop()
    health_module.log.disabled = False
    gc.unfreeze()
    await asyncio.sleep(0.1)
    total = sum(done)
    print(
        f"{kind.upper()} checks of {n:,} servers every 2 s: {total / wall:,.0f} checks/s "
        f"({done[0]:,} failed), {cpu / wall * 100:.0f}% of a core, "
        f"{total / cpu if cpu else 0:,.0f} checks per CPU-second, "
        f"longest stall {watch.worst * 1000:.1f} ms (GC {watch.gc_worst * 1000:.0f} ms)"
        + (f"; failures: {dict(whys.most_common(2))}" if whys else "")
    )


async def reload_bench(pools: int = 1000, per_pool: int = 10) -> None:
    t0 = time.perf_counter()
    config = pool_config(per_pool, pools=pools)
    parse = time.perf_counter() - t0
    rt = Runtime(config)
    health_module.log.disabled = True
    t0 = time.perf_counter()
    await rt.start()
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = pool_config(per_pool, pools=pools, algorithm="least_conn")
    parse2 = time.perf_counter() - t0
    with LoopWatch() as watch:
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        await rt.reload(new)
        took = time.perf_counter() - t0
        await asyncio.sleep(0.01)
    await rt.stop(grace=0)
    health_module.log.disabled = False
    print(f"{pools:,} pools of {per_pool} servers: parse {parse * 1000:,.0f} ms, start {start * 1000:,.0f} ms;")
    print(
        f"reload (every pool's algorithm changed): parse {parse2 * 1000:,.0f} ms + reload {took * 1000:,.0f} ms, "
        f"longest stall {watch.worst * 1000:,.0f} ms"
    )
