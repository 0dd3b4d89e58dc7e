"""Per-request cost of the L7 data plane's Python code, without sockets.

Drives a DownstreamProtocol and an UpstreamConnection through fake transports:
one keep-alive client request in, one small upstream response back, repeated.
What it measures is the user-space work steelyard adds per request (parsing,
header rules, balancing, bookkeeping), not the kernel's share. With ``--close`` each
request comes on a connection of its own with ``Connection: close`` (protocol set-up,
``connection_made``/``connection_lost`` and a fresh parser included).

    .venv/bin/python bench/hotpath.py [--requests 200000] [--close] [--profile]

Instructions per request (deterministic, unlike the µs): the difference of two runs under
cachegrind, e.g. ``--requests 5000`` and ``--requests 15000`` (each also runs a 10,000-request
warm-up and three measured rounds), divided by 30,000; set ``PYTHONHASHSEED=0``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import time

import uvloop

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.downstream import DownstreamProtocol
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Router
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
CLOSE_REQUEST = REQUEST[:-2] + b"Connection: close\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 21:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += 1

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def build(loop: asyncio.AbstractEventLoop, algorithm: str):
    server = Server(name="s1", host="127.0.0.1", port=9)
    holder = {}

    def make_upstream(s):
        holder["cp"] = ConnPool(s, loop, max_idle=8, idle_timeout=60, connect_timeout=1, timeout=30)
        return holder["cp"]

    pool = PoolRuntime(
        "app", algorithm, BalancerOptions(), [server], make_upstream=make_upstream,
        rng=random.Random(1), clock=loop.time, timeout=30.0,
    )  # fmt: skip
    listener = HttpListener("web", "127.0.0.1", 0, Router(pool), loop=loop, keepalive_timeout=60, request_timeout=30)
    down = DownstreamProtocol(listener)
    down.connection_made(FakeTransport())
    conn = UpstreamConnection(holder["cp"])
    conn.connection_made(FakeTransport())
    holder["cp"].release(conn)
    return down, conn


def run(n: int, algorithm: str, close: bool = False) -> float:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    down, conn = build(loop, algorithm)
    t0 = time.perf_counter()
    if close:
        listener, client = down.L, FakeTransport()
        for _ in range(n):
            down = DownstreamProtocol(listener)
            down.connection_made(client)
            down.data_received(CLOSE_REQUEST)
            conn.data_received(RESPONSE)
            down.connection_lost(None)
        down.transport = client
    else:
        for _ in range(n):
            down.data_received(REQUEST)
            conn.data_received(RESPONSE)
    elapsed = time.perf_counter() - t0
    assert down.transport.written == n and conn.transport.written == n, "requests did not complete"
    loop.close()
    return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--algorithm", default="round_robin")
    ap.add_argument("--close", action="store_true", help="a connection per request (Connection: close)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    run(10_000, args.algorithm, args.close)  # warm up
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(args.requests // 4, args.algorithm, args.close)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
        return
    best = min(run(args.requests, args.algorithm, args.close) for _ in range(3))
    how = ", a connection each" if args.close else ""
    print(f"{best:.2f} µs of Python per proxied request ({args.algorithm}{how}, best of 3)")


if __name__ == "__main__":
    main()
