"""``steelyard lab``: every algorithm of the demo, side by side, under real load.

Starts the demo (three backends of 0, 20 and 80 ms, the balancer with one pool per
algorithm under its path prefix) on ephemeral 127.0.0.1 ports, drives the same
bounded load (``loadgen``) through the real proxy to each algorithm's prefix in turn,
and prints per-server share and latency (mean, p50, p99) per algorithm.

Invariants: only 127.0.0.1 is used; the run is bounded by a request count per
algorithm and an overall time limit; everything it started is stopped before it
returns, on success or error.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from ..config import parse_config
from ..control.runtime import Runtime
from ..sim.results import percentile
from .backend import start_backend, stop_backend
from .lab import ALGORITHMS, BACKENDS, PREFIX, demo_config
from .loadgen import drive

LAB_ALGORITHMS = ("round_robin", *ALGORITHMS)


@dataclass(frozen=True)
class LiveResult:
    algorithm: str
    answered: int
    errors: int
    mean: float  # seconds
    p50: float
    p99: float
    share: dict[str, float]  # backend name -> fraction of answered requests


def prefix(algorithm: str) -> str:
    return "" if algorithm == "round_robin" else f"/{PREFIX.get(algorithm, algorithm)}"


def check_algorithms(names: list[str] | None) -> list[str]:
    """The algorithms to drive, in the demo's order; ``ValueError`` names an unknown one."""
    if not names:
        return list(LAB_ALGORITHMS)
    unknown = [n for n in names if n not in LAB_ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm {unknown[0]!r}; the demo has {', '.join(LAB_ALGORITHMS)}")
    return [a for a in LAB_ALGORITHMS if a in names]


async def compare(algorithms: list[str], *, requests: int, concurrency: int, time_limit: float) -> list[LiveResult]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    backends = []
    runtime = None
    try:
        for name, delay in BACKENDS:
            backends.append(await start_backend(name, "127.0.0.1", 0, delay=delay))
        ports = [b.sockets[0].getsockname()[1] for b in backends]
        runtime = Runtime(parse_config(demo_config("127.0.0.1", 0, ports), source="<lab>"))
        await runtime.start()
        port = runtime.listeners["web"].port
        results = []
        for algo in algorithms:
            base = prefix(algo)
            run = await drive(
                "127.0.0.1",
                port,
                lambda i, base=base: f"{base}/lab/{i}",
                requests=requests,
                concurrency=concurrency,
                deadline=deadline,
            )
            times = sorted(t for _, t in run.answers)
            counts = Counter(s for s, _ in run.answers)
            n = len(times)
            results.append(
                LiveResult(
                    algorithm=algo,
                    answered=n,
                    errors=run.errors,
                    mean=sum(times) / n if n else float("nan"),
                    p50=percentile(times, 0.5),
                    p99=percentile(times, 0.99),
                    share={name: counts[name] / n if n else 0.0 for name, _ in BACKENDS},
                )
            )
        return results
    finally:
        if runtime is not None:
            await runtime.stop()
        for b in backends:
            await stop_backend(b)


def table(results: list[LiveResult], requests: int, concurrency: int) -> Table:
    t = Table(
        title=f"live: {requests} requests per algorithm over {concurrency} connections, through the real proxy",
        caption="backends fast, medium, slow answer after 0, 20 and 80 ms; weights 5, 1, 1",
    )
    for col in ("algorithm", "answered", "errors", "mean ms", "p50 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "algorithm" else "right")
    for name, _ in BACKENDS:
        t.add_column(name, justify="right")
    for r in results:
        ms = [("-" if x != x else f"{1000 * x:.1f}") for x in (r.mean, r.p50, r.p99)]
        t.add_row(
            r.algorithm, str(r.answered), str(r.errors), *ms, *(f"{100 * r.share[name]:.0f}%" for name, _ in BACKENDS)
        )
    return t


def run_lab(algorithms: list[str], *, requests: int, concurrency: int, time_limit: float) -> list[LiveResult]:
    """Blocking: run the comparison on uvloop and print its table."""
    import uvloop

    results = uvloop.run(compare(algorithms, requests=requests, concurrency=concurrency, time_limit=time_limit))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table(results, requests, concurrency))
    return results
