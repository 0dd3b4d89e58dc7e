"""Queries per second of steelyard's DNS balancer, driven by dnsperf (Debian's `dnsperf`).

Starts `steelyard serve` with one zone whose record answers from a pool of four servers (no
health checks, so all four are answered), runs dnsperf against its UDP port for --duration
seconds, and reports queries/s, latency and the balancer's CPU µs per query (utime + stime from
/proc/PID/stat over the run). Everything on 127.0.0.1.

    .venv/bin/python bench/dns_qps.py [--duration 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"

[[pool]]
name = "app"
servers = [ {{ address = "127.0.0.2:80" }}, {{ address = "127.0.0.3:80" }}, {{ address = "127.0.0.4:80" }},
            {{ address = "127.0.0.5:80" }} ]

[[dns]]
bind = "127.0.0.1:{port}"
zone = "example.test."

[[dns.record]]
name = "app"
pool = "app"
policy = "{policy}"
"""


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def free_port() -> int:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--policy", default="round_robin")
    a = ap.parse_args()
    if shutil.which("dnsperf") is None:
        print("dns_qps: needs dnsperf (apt-get install dnsperf)", file=sys.stderr)
        return 2
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="steelyard-dnsbench-"))
    (work / "steelyard.toml").write_text(CONFIG.format(port=port, policy=a.policy))
    (work / "queries.txt").write_text("app.example.test A\n" * 9 + "nope.example.test A\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "steelyard.cli", "serve", "-c", str(work / "steelyard.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:  # wait for the "serving" line
            if "dns" in line and "serving" in line:
                break
        before = cpu_ticks(proc.pid)
        started = time.monotonic()
        out = subprocess.run(
            [
                "dnsperf",
                "-s",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                str(work / "queries.txt"),
                "-l",
                f"{a.duration:g}",
                "-c",
                str(a.clients),
                "-q",
                "200",
            ],
            capture_output=True,
            text=True,
            timeout=a.duration + 60,
        )
        elapsed = time.monotonic() - started
        ticks = cpu_ticks(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(10)
    text = out.stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", text).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", text).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", text).group(1))
    latency = re.search(r"Average Latency \(s\):\s+([\d.]+)", text).group(1)
    cpu_us = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(completed, 1)
    print(
        f"dnsperf -c {a.clients} -q 200, {a.duration:g}s, policy {a.policy}: {qps:,.0f} queries/s, "
        f"{completed:,} completed, {lost} lost, average latency {float(latency) * 1000:.2f} ms, "
        f"steelyard CPU {cpu_us:.1f} µs/query ({elapsed:.1f}s wall)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
