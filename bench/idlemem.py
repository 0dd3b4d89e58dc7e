"""Memory per idle keep-alive client connection of an HTTP listener, by allocation site (tracemalloc).

An in-process HttpListener in front of an in-process backend; a child process opens N client
connections, makes one keep-alive request on each and keeps them open. Prints the traced bytes
per connection and the largest allocation sites (the uvloop transport and libuv handle show up
under ``run_until_complete``). RSS is printed too, but tracemalloc's own overhead inflates it:
``compare.py --scenarios idle`` is the RSS figure to quote.

    .venv/bin/python bench/idlemem.py [N]          # default 2000; TM_FRAMES=5 for deeper tracebacks
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tracemalloc

import uvloop

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Router
from steelyard.proxy.pool import PoolRuntime

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
RESP = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
    b"Connection: keep-alive\r\n\r\n0123456789abcde\n"
)
CLIENT = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /16 HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    got = b""
    while not got.endswith(b"0123456789abcde\n"):
        got += s.recv(4096)
    socks.append(s)
print("ready", flush=True)
sys.stdin.readline()
"""


class Backend(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(RESP * data.count(b"\r\n\r\n"))


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


async def main() -> None:
    loop = asyncio.get_running_loop()
    bsrv = await loop.create_server(Backend, "127.0.0.1", 0)
    bport = bsrv.sockets[0].getsockname()[1]
    server = Server(name="s1", host="127.0.0.1", port=bport)

    def mk(s):
        return ConnPool(s, loop, max_idle=1024, idle_timeout=60, connect_timeout=2, timeout=30)

    pool = PoolRuntime(
        "b",
        "round_robin",
        BalancerOptions(),
        [server],
        make_upstream=mk,
        rng=random.Random(1),
        clock=loop.time,
        timeout=30.0,
    )
    L = HttpListener("web", "127.0.0.1", 0, Router(pool), loop=loop, keepalive_timeout=60, request_timeout=30)
    await L.start()

    async def clients(n: int):
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, str(L.port), str(n), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert (await p.stdout.readline()).startswith(b"ready")
        return p

    w = await clients(200)  # warm
    await asyncio.sleep(0.3)
    w.stdin.close()
    await w.wait()
    await asyncio.sleep(0.3)
    tracemalloc.start(int(os.environ.get("TM_FRAMES", "1")))
    s0 = tracemalloc.take_snapshot()
    r0 = rss()
    p = await clients(N)
    await asyncio.sleep(0.5)
    s1 = tracemalloc.take_snapshot()
    r1 = rss()
    assert len(L.connections) == N, len(L.connections)
    stats = s1.compare_to(s0, os.environ.get("TM_KEY", "lineno"))
    tot = sum(s.size_diff for s in stats)
    print(f"tracemalloc: {tot / N:.0f} B/conn  (RSS incl. tracemalloc overhead {((r1 - r0) * 1024) / N:.0f} B/conn)")
    for s in stats[:25]:
        if abs(s.size_diff) / N >= 4:
            where = s.traceback[-1]
            print(f"{s.size_diff / N:8.1f} B {s.count_diff / N:5.2f} blocks  {where.filename}:{where.lineno}")
            print(f"{'':26}{s.traceback.format()[-1].strip()[:90]}")
    p.stdin.close()
    await p.wait()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
