"""What hostile clients make one `steelyard serve` process hold (the figures in docs/security.md).

Each scenario starts the balancer on 127.0.0.1, opens its clients, waits a few seconds for the
balancer to read what it will read, and prints how much its resident memory grew:

- ``pipeline``: 200 connections each send 256 KiB of small pipelined GETs and never read; the
  server takes each connection's first request and never answers.
- ``chunks``: 100 connections each send a POST whose body is 256 KiB of 1-byte chunks, to a
  server whose accept queue is full (the connects hang).

    .venv/bin/python bench/client_memory.py [pipeline|chunks ...]
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

SETTLE = 4.0  # seconds for the balancer to read what it will read (a measurement, not a test)


def serve(upstream_port: int, extra: str = "") -> tuple[subprocess.Popen[str], int]:
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    cfg.write(
        f'[[listener]]\nname = "web"\nbind = "127.0.0.1:0"\npool = "app"\n'
        f'[[pool]]\nname = "app"\n{extra}\nservers = [ {{ address = "127.0.0.1:{upstream_port}" }} ]\n'
    )
    cfg.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "steelyard.cli", "serve", "--config", cfg.name], stdout=subprocess.PIPE, text=True
    )
    for line in proc.stdout:  # type: ignore[union-attr]
        m = re.search(r"serving http on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    raise SystemExit("the balancer did not start")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def flood(port: int, n: int, payload: bytes) -> list[socket.socket]:
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.setblocking(False)
        try:
            c.send(payload)
        except BlockingIOError:
            pass
        clients.append(c)
    return clients


def stalling_server() -> socket.socket:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)

    def take() -> None:
        held = []
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            c.recv(65536)  # the first request; never answered
            held.append(c)

    threading.Thread(target=take, daemon=True).start()
    return ls


def full_backlog_server() -> tuple[socket.socket, list[socket.socket]]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(ls.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)
    return ls, fillers


def measure(name: str, upstream: int, n: int, payload: bytes, extra: str = "") -> None:
    proc, port = serve(upstream, extra)
    try:
        before = rss_kib(proc.pid)
        clients = flood(port, n, payload)
        time.sleep(SETTLE)
        grown = rss_kib(proc.pid) - before
        print(f"{name}: {n} connections x {len(payload) // 1024} KiB: the balancer grew by {grown / 1024:.0f} MiB")
        for c in clients:
            c.close()
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    which = sys.argv[1:] or ["pipeline", "chunks"]
    if "pipeline" in which:
        ls = stalling_server()
        get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        measure("pipeline", ls.getsockname()[1], 200, get * (256 * 1024 // len(get)), "max_idle = 0")
        ls.close()
    if "chunks" in which:
        ls, fillers = full_backlog_server()
        body = b"1\r\nx\r\n" * (256 * 1024)
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        measure("chunks", ls.getsockname()[1], 100, head + body, 'connect_timeout = "20s"')
        ls.close()
        for f in fillers:
            f.close()


if __name__ == "__main__":
    main()
