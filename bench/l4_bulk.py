#!/usr/bin/env python3
"""Bulk transfer through steelyard's TCP relay: sha256-checked, both ways at once, CPU per MiB.

    .venv/bin/python bench/l4_bulk.py [--mib 1024] [--relay copy|splice|both] [--runs 1]

A threaded server on 127.0.0.1 and a client stream ``--mib`` MiB to each other at the same time
through ``steelyard serve`` (mode tcp); both sides hash what they receive and compare it with
what the other sent. Reported per relay: wall time, MiB/s (both directions together) and the
proxy's CPU (utime + stime from /proc/PID/stat) in ms per MiB relayed. ``splice`` runs the
relay with ``splice = true`` (os.splice through a pipe), ``copy`` with ``splice = false``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
BLOCK = os.urandom(MiB)


def stream(n_mib: int) -> tuple[list[bytes], str]:
    """``n_mib`` distinct 1 MiB blocks (a counter mixed into a random block) and their sha256."""
    h = hashlib.sha256()
    blocks = []
    for i in range(n_mib):
        b = i.to_bytes(8, "little") + BLOCK[8:]
        h.update(b)
        blocks.append(b)
    return blocks, h.hexdigest()


def pump(sock: socket.socket, blocks: list[bytes]) -> None:
    for b in blocks:
        sock.sendall(b)
    sock.shutdown(socket.SHUT_WR)


def drain(sock: socket.socket) -> tuple[int, str]:
    h, n, buf = hashlib.sha256(), 0, bytearray(1 << 20)
    view = memoryview(buf)
    while k := sock.recv_into(buf):
        h.update(view[:k])
        n += k
    return n, h.hexdigest()


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def run(relay: str, n_mib: int, up: tuple, down: tuple) -> dict:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    got: dict = {}

    def serve() -> None:
        c, _ = srv.accept()
        t = threading.Thread(target=pump, args=(c, down[0]))
        t.start()
        got["server"] = drain(c)
        t.join()
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "bulk.toml"
        conf.write_text(
            f'[[listener]]\nname = "bulk"\nbind = "127.0.0.1:0"\nmode = "tcp"\npool = "p"\n'
            f"splice = {'true' if relay == 'splice' else 'false'}\n\n"
            f'[[pool]]\nname = "p"\nservers = [ {{ address = "127.0.0.1:{srv.getsockname()[1]}" }} ]\n'
        )
        proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/steelyard"), "serve", "-c", str(conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            m = re.search(r"serving tcp on \S+:(\d+)", proc.stdout.readline())
            if m is None:
                raise SystemExit(f"steelyard did not start: {proc.stdout.read()}")
            c = socket.create_connection(("127.0.0.1", int(m.group(1))))
            tick = os.sysconf("SC_CLK_TCK")
            c0, t0 = cpu_ticks(proc.pid), time.monotonic()
            t = threading.Thread(target=pump, args=(c, up[0]))
            t.start()
            client = drain(c)
            t.join()
            c1, t1 = cpu_ticks(proc.pid), time.monotonic()
            c.close()
        finally:
            proc.terminate()
            proc.wait(10)
            srv.close()
    total = 2 * n_mib
    ok = client == (n_mib * MiB, down[1]) and got.get("server") == (n_mib * MiB, up[1])
    return {
        "relay": relay,
        "ok": ok,
        "wall_s": t1 - t0,
        "mib_s": total / (t1 - t0),
        "cpu_ms_per_mib": (c1 - c0) / tick * 1000 / total,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=1024, help="MiB each way (default 1024: 1 GiB up and 1 GiB down)")
    p.add_argument("--relay", choices=("copy", "splice", "both"), default="both")
    p.add_argument("--runs", type=int, default=1)
    a = p.parse_args()
    up, down = stream(a.mib), stream(a.mib)
    relays = ("copy", "splice") if a.relay == "both" else (a.relay,)
    failed = False
    for i in range(a.runs):
        for relay in relays:
            r = run(relay, a.mib, up, down)
            failed |= not r["ok"]
            print(
                f"run {i + 1} {relay:6} {a.mib} MiB each way: sha256 {'match' if r['ok'] else 'MISMATCH'}, "
                f"{r['wall_s']:.2f} s, {r['mib_s']:.0f} MiB/s, {r['cpu_ms_per_mib']:.3f} ms CPU/MiB",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
