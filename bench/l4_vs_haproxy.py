#!/usr/bin/env python3
"""steelyard's TCP (L4) relay side by side with HAProxy ``mode tcp``, in front of the same nginx.

    .venv/bin/python bench/l4_vs_haproxy.py [--runs 3] [--duration 5] [--only steelyard|haproxy]
                                            [--scenarios rr,conn,1mib]

Proxies: haproxy, steelyard (``splice = false``: the copy relay through Python) and
steelyard-splice (``splice = true``, the default: os.splice through a pipe, bytes never enter Python).

Scenarios (wrk drives HTTP through the relay; the relay itself never parses it):

- ``rr``:   small request/response on 50 keep-alive connections: CPU µs per request
- ``conn``: the same with ``Connection: close`` (one TCP connection per request, so the relay
            accepts, balances, connects and tears down every time): CPU µs per connection
- ``1mib``: GET of a 1 MiB file on 8 keep-alive connections: CPU ms per MiB relayed, MiB/s

The proxy runs alone on CPU 0, nginx and wrk share CPU 1 (``taskset``, unless ``--no-pin``).
CPU is utime + stime of the proxy process from /proc/PID/stat, read right before and after
the measured run. Helpers (process control, CPU readings, nginx) come from http_vs_haproxy.py.
Results: a table on the terminal and JSON in bench/results/l4_vs_haproxy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_vs_haproxy as H  # noqa: E402  (the L7 bench: shared helpers)

SCENARIOS = {  # name: (path, connections, extra wrk args, unit)
    "rr": ("/", 50, [], "req"),
    "conn": ("/", 50, ["-H", "Connection: close"], "conn"),
    "1mib": ("/1m", 8, [], "MiB"),
}
MiB = 1 << 20
PROXIES = ("haproxy", "steelyard", "steelyard-splice")  # steelyard: splice = false (the copy relay)


def haproxy_conf(port: int, backend: int) -> str:
    return f"""
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:{port}
    default_backend nginx

backend nginx
    server nginx 127.0.0.1:{backend}
"""


def steelyard_conf(port: int, backend: int, splice: bool) -> str:
    return f"""
shutdown_grace = "2s"

[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
mode = "tcp"
pool = "nginx"
splice = {str(splice).lower()}

[[pool]]
name = "nginx"
servers = [{{ address = "127.0.0.1:{backend}" }}]
"""


class L4Bench(H.Bench):
    def start_nginx(self) -> None:
        (self.tmp / "1m").write_bytes(os.urandom(MiB))
        conf = H.nginx_conf(self.tmp, 0)
        conf = conf.replace("location / {", f"location = /1m {{ root {self.tmp}; }}\n        location / {{")
        self.nginx_port = H.free_port()
        conf = conf.replace("listen 127.0.0.1:0;", f"listen 127.0.0.1:{self.nginx_port};")
        path = self.tmp / "nginx.conf"
        path.write_text(conf)
        self.nginx = self.kids.start(
            [self.tools["nginx"], "-p", str(self.tmp), "-c", str(path)],
            cpu=self.cpu(H.LOAD_CPU),
            log=self.tmp / "nginx.out",
        )
        H.wait_serving(self.nginx_port, self.nginx, "nginx")

    def start_proxy(self, name: str):
        port = H.free_port()
        conf = self.tmp / f"{name}.cfg"
        if name == "haproxy":
            conf.write_text(haproxy_conf(port, self.nginx_port))
            argv = [self.tools["haproxy"], "-db", "-f", str(conf)]
        else:
            conf.write_text(steelyard_conf(port, self.nginx_port, splice=name == "steelyard-splice"))
            argv = [self.tools["steelyard"], "serve", "--config", str(conf)]
        proc = self.kids.start(argv, cpu=self.cpu(H.PROXY_CPU), capture=True)
        tail = H.OutputTail(proc)
        if name.startswith("steelyard") and tail.wait_for(re.compile(r"serving tcp on"), 15.0) is None:
            raise H.BenchError(f"steelyard did not start:\n{tail.text()}")
        H.wait_serving(port, proc, name)
        return proc, port, tail

    def wrk_l4(self, port: int, scenario: str, duration: float) -> dict:
        path, conns, extra, _ = SCENARIOS[scenario]
        return self.wrk(port, duration, conns, path, tuple(extra))

    def measure_l4(self, name: str, scenario: str, run: int) -> dict:
        a = self.args
        proc, port, tail = self.start_proxy(name)
        try:
            if a.warmup > 0:
                self.wrk_l4(port, scenario, a.warmup)
            time.sleep(0.2)
            nginx = self.nginx.pid  # type: ignore[union-attr]
            c0, t0, m0, k0 = H.cpu_ticks(proc.pid), time.monotonic(), H.machine_busy_ticks(), H.cpu_ticks(nginx)
            r0 = H.reaped_children_cpu()
            w = self.wrk_l4(port, scenario, a.duration)
            c1, t1, m1, k1 = H.cpu_ticks(proc.pid), time.monotonic(), H.machine_busy_ticks(), H.cpu_ticks(nginx)
            wrk_cpu = H.reaped_children_cpu() - r0  # only wrk exited during the window
            rss = _rss_kib(proc.pid)
        finally:
            self.kids.stop(proc)
            tail.join(3)
        cpu, wall = (c1 - c0) / self.tick, t1 - t0
        secs = w["duration_us"] / 1e6
        mib = w["bytes"] / MiB
        errors = w["status"] + w["connect"] + w["read"] + w["write"] + w["timeout"]
        return {
            "proxy": name,
            "scenario": scenario,
            "run": run,
            "requests": w["requests"],
            "rps": w["requests"] / secs,
            "mib_s": mib / secs,
            "p50_ms": w["p50_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "cpu_s": cpu,
            "cpu_util": cpu / wall,
            "cpu_us_per_req": cpu / w["requests"] * 1e6 if w["requests"] else float("nan"),
            "cpu_ms_per_mib": cpu / mib * 1e3 if mib else float("nan"),
            "other_cpu_util": max(0.0, (m1 - m0) / self.tick - cpu - (k1 - k0) / self.tick - wrk_cpu) / wall,
            "rss_kib_after": rss,
            "errors": errors,
            "socket_errors": {k: w[k] for k in ("connect", "read", "write", "timeout")},
        }


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def headline(r: dict) -> str:
    if r["scenario"] == "1mib":
        return f"{r['cpu_ms_per_mib']:.2f} ms CPU/MiB, {r['mib_s']:.0f} MiB/s"
    unit = "conn" if r["scenario"] == "conn" else "req"
    return f"{r['cpu_us_per_req']:.1f} µs CPU/{unit}, {r['rps']:,.0f} {unit}/s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--only", choices=PROXIES)
    p.add_argument("--scenarios", default="rr,conn,1mib")
    p.add_argument("--no-pin", action="store_true")
    a = p.parse_args(argv)
    tools = H.find_tools()
    proxies = [a.only] if a.only else list(PROXIES)
    scenarios = a.scenarios.split(",")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="l4bench-") as tmp:
        bench = L4Bench(a, tools, Path(tmp))
        try:
            bench.start_nginx()
            for scenario in scenarios:
                for run in range(1, a.runs + 1):
                    for name in proxies:
                        r = bench.measure_l4(name, scenario, run)
                        rows.append(r)
                        print(
                            f"{scenario:5} {name:10} run {run}: {headline(r)}  p50 {r['p50_ms']:.2f} ms  "
                            f"p99 {r['p99_ms']:.2f} ms  proxy CPU {r['cpu_util']:.0%}  "
                            f"other {r['other_cpu_util']:.0%}  RSS {r['rss_kib_after'] // 1024} MiB  "
                            f"errors {r['errors']}",
                            flush=True,
                        )
        except KeyboardInterrupt:
            return 130
        finally:
            bench.kids.kill_all()
    print()
    for scenario in scenarios:
        for name in proxies:
            mine = [r for r in rows if r["proxy"] == name and r["scenario"] == scenario]
            key = "cpu_ms_per_mib" if scenario == "1mib" else "cpu_us_per_req"
            med = dict(
                mine[0],
                **{
                    key: H.median([r[key] for r in mine]),
                    "rps": H.median([r["rps"] for r in mine]),
                    "mib_s": H.median([r["mib_s"] for r in mine]),
                },
            )
            print(f"median {scenario:5} {name:10} {headline(med)}")
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    out = H.RESULTS / f"l4_vs_haproxy-{H._stamp()}.json"
    out.write_text(json.dumps({"args": vars(a), "machine": H.machine_info(), "rows": rows}, indent=1))
    print(f"\nJSON: {out}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
