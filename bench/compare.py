#!/usr/bin/env python3
"""HAProxy, nginx and steelyard as balancers, side by side in one run, in front of two nginx backends.

    .venv/bin/python bench/compare.py [--runs 1] [--duration 5] [--scenarios l7-ka,...]
                                      [--targets direct,haproxy,nginx,steelyard,steelyard-w2] [--no-write]

Backends: two nginx (1 worker each): ``/`` answers ``ok\\n``, ``/16`` 16 bytes, ``/1m`` a 1 MiB file.
Targets, each started fresh per scenario and run, taking turns:

- ``direct``: wrk straight at backend 1, no balancer (the floor; its CPU/RSS columns are that nginx's)
- ``haproxy``: 1 thread, ``http-reuse always`` (``mode tcp`` for the L4 scenarios)
- ``nginx``: as a balancer, 1 worker, upstream ``keepalive`` (the ``stream`` module for L4)
- ``steelyard``: ``workers = 1``, round_robin over both backends (``mode = "tcp"``, splice, for L4)
- ``steelyard-w2``: the same with ``workers = 2`` (CPU and RSS summed over its processes; not pinned
  to CPU 0: its two workers may use both CPUs)

Every balancer adds X-Forwarded-For/-Proto/-Host (steelyard always does). Scenarios:

- ``l7-ka``: wrk -c50 keep-alive GET /16: µs CPU per request
- ``l7-close``: the same with ``Connection: close`` (a client connection per request)
- ``l7-1mib``: wrk -c8 keep-alive GET /1m: ms CPU per MiB
- ``l4-small``, ``l4-1mib``: the same two through a TCP relay
- ``idle``: 5,000 client connections each make one keep-alive request, then stay open idle: RSS per connection

The balancer runs alone on CPU 0, backends and wrk on CPU 1 (taskset). CPU is utime + stime from
/proc/PID/stat over the measured run. The Markdown table is printed and (unless ``--no-write``)
replaces the harness section of bench/RESULTS.md; JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_vs_haproxy as H  # noqa: E402  (process control, CPU readings, wrk)

TARGETS = ("direct", "haproxy", "nginx", "steelyard", "steelyard-w2")
SCENARIOS = {  # name: (layer, path, wrk connections, extra wrk args, unit)
    "l7-ka": ("http", "/16", 50, (), "req"),
    "l7-close": ("http", "/16", 50, ("-H", "Connection: close"), "req"),
    "l7-1mib": ("http", "/1m", 8, (), "MiB"),
    "l4-small": ("tcp", "/16", 50, (), "req"),
    "l4-1mib": ("tcp", "/1m", 8, (), "MiB"),
    "idle": ("http", "/16", 0, (), "conn"),
}
MiB = 1 << 20
BODY16 = b"0123456789abcde\n"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
BEGIN, END = "<!-- bench/compare.py: begin -->", "<!-- bench/compare.py: end -->"


def backend_conf(tmp: Path, name: str, port: int) -> str:
    return f"""
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 19000;
pid {tmp}/{name}.pid; error_log {tmp}/{name}-error.log warn;
events {{ worker_connections 9000; }}
http {{
    access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
    client_body_temp_path {tmp}/{name}-body; proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fcgi; uwsgi_temp_path {tmp}/{name}-uwsgi; scgi_temp_path {tmp}/{name}-scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /16 {{ default_type text/plain; return 200 "{BODY16.decode()[:-1]}\\n"; }}
        location = /1m {{ root {tmp}; }}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def haproxy_conf(layer: str, port: int, b1: int, b2: int) -> str:
    http = (
        """    option http-keep-alive
    http-reuse always
    option forwardfor
    timeout http-request 30s
    timeout http-keep-alive 60s
"""
        if layer == "http"
        else ""
    )
    front = (
        """    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
"""
        if layer == "http"
        else ""
    )
    return f"""
global
    nbthread 1
    maxconn 9000
defaults
    mode {layer}
{http}    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:{port}
{front}    default_backend b
backend b
    balance roundrobin
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
"""


def nginx_lb_conf(tmp: Path, layer: str, port: int, b1: int, b2: int) -> str:
    head = f"""
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 19000;
pid {tmp}/lb.pid; error_log {tmp}/lb-error.log warn;
events {{ worker_connections 9000; }}
"""
    if layer == "tcp":
        return f"""load_module {STREAM_MODULE};
{head}
stream {{
    upstream b {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; }}
    server {{ listen 127.0.0.1:{port}; proxy_pass b; }}
}}
"""
    return f"""{head}
http {{
    access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
    client_body_temp_path {tmp}/lb-body; proxy_temp_path {tmp}/lb-proxy;
    fastcgi_temp_path {tmp}/lb-fcgi; uwsgi_temp_path {tmp}/lb-uwsgi; scgi_temp_path {tmp}/lb-scgi;
    upstream b {{
        server 127.0.0.1:{b1}; server 127.0.0.1:{b2};
        keepalive 1024; keepalive_requests 100000000; keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_buffering off;  # streams like the other two (no temp files for 1 MiB)
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
        }}
    }}
}}
"""


def steelyard_conf(layer: str, port: int, b1: int, b2: int, workers: int = 1) -> str:
    servers = f'servers = [{{ address = "127.0.0.1:{b1}" }}, {{ address = "127.0.0.1:{b2}" }}]'
    if layer == "tcp":
        return f"""workers = {workers}
shutdown_grace = "2s"
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
mode = "tcp"
pool = "b"
[[pool]]
name = "b"
{servers}
"""
    return f"""workers = {workers}
shutdown_grace = "2s"
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
mode = "http"
pool = "b"
keepalive_timeout = "60s"
request_timeout = "30s"
[[pool]]
name = "b"
algorithm = "round_robin"
{servers}
connect_timeout = "2s"
timeout = "30s"
max_idle = 1024
idle_timeout = "60s"
"""


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its children (steelyard's worker processes), in KiB."""
    total = 0
    for p in (pid, *children(pid)):
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` and its children (a balancer's worker processes)."""
    total = 0
    for p in (pid, *children(pid)):
        try:
            total += H.cpu_ticks(p)
        except OSError:
            pass
    return total


async def _idle_clients(port: int, n: int, pid: int) -> tuple[int, int]:
    """Open ``n`` connections, one keep-alive GET /16 on each, and keep them open for a second:
    (how many worked, the RSS of ``pid`` in KiB then)."""
    hold: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(200)
    request = b"GET /16 HTTP/1.1\r\nHost: bench.test\r\n\r\n"

    async def one() -> bool:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(len(BODY16))
            except (OSError, asyncio.IncompleteReadError):
                return False
            hold.append(writer)
            return True

    ok = sum(await asyncio.gather(*(one() for _ in range(n))))
    await asyncio.sleep(1.0)
    rss = rss_kib(pid)
    for w in hold:
        w.transport.abort()
    return ok, rss


class Compare(H.Bench):
    def start_nginx(self) -> None:
        (self.tmp / "1m").write_bytes(os.urandom(MiB))
        self.backends = []
        for name in ("b1", "b2"):
            port = H.free_port()
            conf = self.tmp / f"{name}.conf"
            conf.write_text(backend_conf(self.tmp, name, port))
            proc = self.kids.start(
                [self.tools["nginx"], "-p", str(self.tmp), "-c", str(conf)],
                cpu=self.cpu(H.LOAD_CPU),
                log=self.tmp / f"{name}.out",
            )
            H.wait_serving(port, proc, f"nginx backend {name}")
            self.backends.append((proc, port))
        self.nginx, self.nginx_port = self.backends[0]

    def start_target(self, name: str, layer: str):
        """(process, port, output tail or None, owned: stop it afterwards)."""
        if name == "direct":
            return self.nginx, self.nginx_port, None, False
        port = H.free_port()
        b1, b2 = (p for _, p in self.backends)
        conf = self.tmp / f"{name}-{layer}.cfg"
        if name == "haproxy":
            conf.write_text(haproxy_conf(layer, port, b1, b2))
            argv = [self.tools["haproxy"], "-db", "-f", str(conf)]
        elif name == "nginx":
            conf.write_text(nginx_lb_conf(self.tmp, layer, port, b1, b2))
            argv = [self.tools["nginx"], "-p", str(self.tmp), "-c", str(conf)]
        else:
            workers = 2 if name == "steelyard-w2" else 1
            conf.write_text(steelyard_conf(layer, port, b1, b2, workers))
            argv = [self.tools["steelyard"], "serve", "--config", str(conf)]
        # (two workers may use both CPUs, sharing CPU 1 with wrk and the backends)
        proc = self.kids.start(argv, cpu=self.cpu("0,1" if name == "steelyard-w2" else H.PROXY_CPU), capture=True)
        tail = H.OutputTail(proc)
        if name.startswith("steelyard") and tail.wait_for(re.compile(r"serving (http|tcp) on"), 15.0) is None:
            self.kids.stop(proc)
            raise H.BenchError(f"steelyard did not start:\n{tail.text()}")
        try:
            H.wait_serving(port, proc, name)
        except H.BenchError as exc:
            self.kids.stop(proc)
            tail.join(2)
            raise H.BenchError(f"{exc}; its output:\n{tail.text()}") from None
        return proc, port, tail, True

    def run_one(self, name: str, scenario: str, run: int) -> dict:
        a = self.args
        layer, path, conns, extra, unit = SCENARIOS[scenario]
        proc, port, tail, owned = self.start_target(name, layer)
        row: dict = {"target": name, "scenario": scenario, "run": run, "unit": unit, "errors": 0}
        try:
            if scenario == "idle":
                self.wrk(port, 1.0, 50, path)  # warm: buffers, upstream connections
                time.sleep(0.5)
                rss0 = rss_kib(proc.pid)
                ok, rss1 = asyncio.run(_idle_clients(port, a.idle, proc.pid))
                row.update(
                    rss_kib=rss1, idle_ok=ok, errors=a.idle - ok, bytes_per_conn=(rss1 - rss0) * 1024 / max(ok, 1)
                )
                return row
            if a.warmup > 0:
                self.wrk(port, a.warmup, conns, path, extra)
            time.sleep(0.2)
            c0, t0 = cpu_ticks(proc.pid), time.monotonic()
            w = self.wrk(port, a.duration, conns, path, extra)
            c1, t1 = cpu_ticks(proc.pid), time.monotonic()
            cpu, secs = (c1 - c0) / self.tick, w["duration_us"] / 1e6
            mib = w["bytes"] / MiB
            row.update(
                requests=w["requests"],
                rps=w["requests"] / secs,
                mib_s=mib / secs,
                p50_ms=w["p50_us"] / 1000,
                p99_ms=w["p99_us"] / 1000,
                cpu_util=cpu / (t1 - t0),
                cpu_us_per_req=cpu / w["requests"] * 1e6 if w["requests"] else float("nan"),
                cpu_ms_per_mib=cpu / mib * 1e3 if mib else float("nan"),
                rss_kib=rss_kib(proc.pid),
                errors=w["status"] + w["connect"] + w["read"] + w["write"] + w["timeout"],
            )
            return row
        finally:
            if owned:
                self.kids.stop(proc)
                tail.join(3)


def headline(row: dict) -> float:
    if row["scenario"] == "idle":
        return row["bytes_per_conn"]
    return row["cpu_ms_per_mib"] if row["unit"] == "MiB" else row["cpu_us_per_req"]


def spread(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{format(lo, fmt)} – {format(hi, fmt)}"


def markdown(rows: list[dict], scenarios: list[str], targets: list[str]) -> str:
    out = [
        "| scenario | target | req/s | p50 ms | p99 ms | balancer CPU | ÷ HAProxy CPU | ÷ HAProxy req/s | RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    units = {"req": "µs/req", "MiB": "ms/MiB", "conn": "B/idle conn"}
    for sc in scenarios:
        base = [r for r in rows if r["scenario"] == sc and r["target"] == "haproxy"]
        hcpu = H.median([headline(r) for r in base]) if base else None
        hrps = H.median([r["rps"] for r in base]) if base and sc != "idle" else None
        for t in targets:
            mine = [r for r in rows if r["scenario"] == sc and r["target"] == t]
            if not mine:
                continue
            cpu = [headline(r) for r in mine]
            fmt = ".0f" if sc == "idle" else (".2f" if SCENARIOS[sc][4] == "MiB" else ".1f")
            cpu_cell = f"{spread(cpu, fmt)} {units[SCENARIOS[sc][4]]}"
            ratio = f"×{H.median(cpu) / hcpu:.2f}" if hcpu and t != "haproxy" else ("1" if t == "haproxy" else "")
            rss = spread([r["rss_kib"] / 1024 for r in mine], ".1f")
            if sc == "idle":
                out.append(f"| {sc} | {t} | | | | {cpu_cell} | {ratio} | | {rss} |")
                continue
            rps = [r["rps"] for r in mine]
            rratio = f"×{H.median(rps) / hrps:.2f}" if hrps and t != "haproxy" else ("1" if t == "haproxy" else "")
            if t == "direct":
                cpu_cell, ratio = f"({cpu_cell}, backend)", ""
            mibs = f" ({H.median([r['mib_s'] for r in mine]):,.0f} MiB/s)" if SCENARIOS[sc][4] == "MiB" else ""
            out.append(
                f"| {sc} | {t} | {spread(rps, ',.0f')}{mibs} | {spread([r['p50_ms'] for r in mine], '.2f')} | "
                f"{spread([r['p99_ms'] for r in mine], '.2f')} | {cpu_cell} | {ratio} | {rratio} | {rss} |"
            )
    return "\n".join(out)


def write_results(table: str, args: argparse.Namespace, machine: dict) -> None:
    path = H.ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Latest benchmark results\n"
    section = (
        f"{BEGIN}\n## Side by side: HAProxy, nginx, steelyard (`make bench` = `bench/compare.py`)\n\n"
        f"{dt.date.today().isoformat()}, steelyard commit `{machine['steelyard_commit']}`; {machine['cpus']} "
        f"CPUs ({machine['cpu_model']}), Linux {machine['kernel']}, Python {machine['python']}. "
        f"`--runs {args.runs} --duration {args.duration:g}`; ranges are over runs. The balancer alone on "
        f"CPU 0, the two nginx backends and wrk on CPU 1. `direct` is wrk straight at one backend (its CPU "
        f"and RSS columns are that nginx's). `steelyard-w2` is steelyard with `workers = 2` (a control "
        f"process and two workers, free to use both CPUs, so sharing CPU 1 with wrk and the backends; its "
        f"CPU and RSS are the sum over its processes).\n\n{table}\n{END}"
    )
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--idle", type=int, default=5000, help="idle keep-alive connections (default 5000)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    a = p.parse_args(argv)
    scenarios, targets = a.scenarios.split(","), a.targets.split(",")
    if bad := [s for s in scenarios if s not in SCENARIOS] + [t for t in targets if t not in TARGETS]:
        p.error(f"unknown: {', '.join(bad)}")
    try:
        tools = H.find_tools()
    except H.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 19000), hard), hard))  # children inherit it
    if "nginx" in targets and any(SCENARIOS[s][0] == "tcp" for s in scenarios) and not os.path.exists(STREAM_MODULE):
        print(f"bench: {STREAM_MODULE} missing (apt-get install libnginx-mod-stream): no nginx in L4", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        bench = Compare(a, tools, Path(tmp))
        bench.pin = bench.pin and (os.cpu_count() or 1) >= 2
        try:
            bench.start_nginx()
            for sc in scenarios:
                for run in range(1, a.runs + 1):
                    for t in targets:
                        if t == "nginx" and SCENARIOS[sc][0] == "tcp" and not os.path.exists(STREAM_MODULE):
                            continue
                        r = bench.run_one(t, sc, run)
                        rows.append(r)
                        print(
                            f"{sc:8} {t:9} run {run}: {headline(r):10.2f} "
                            f"{'B/conn' if sc == 'idle' else SCENARIOS[sc][4]}  rps {r.get('rps', 0):9,.0f}  "
                            f"errors {r['errors']}",
                            file=sys.stderr,
                            flush=True,
                        )
        except KeyboardInterrupt:
            return 130
        except H.BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.kids.kill_all()
    table = markdown(rows, scenarios, targets)
    print(table)
    machine = H.machine_info()
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    out = H.RESULTS / f"compare-{H._stamp()}.json"
    out.write_text(json.dumps({"args": vars(a), "machine": machine, "rows": rows}, indent=1))
    print(f"\nJSON: {out}", file=sys.stderr)
    if not a.no_write:
        write_results(table, a, machine)
        print("bench/RESULTS.md updated", file=sys.stderr)
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
