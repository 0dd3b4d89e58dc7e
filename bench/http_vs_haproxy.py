#!/usr/bin/env python3
"""steelyard's L7 proxy side by side with HAProxy, in front of the same nginx.

    .venv/bin/python bench/http_vs_haproxy.py [--runs 3] [--duration 10] [--connections 50]
                                              [--only steelyard|haproxy] [--profile]

One nginx (1 worker, ``return 200 "ok\\n"``) is the backend. Each proxy in turn is
started in front of it, warmed up with a short wrk run, then loaded with
``wrk -t1 -cN -dS --latency`` over keep-alive connections (the proxy keeps its
upstream connections alive too). The proxy runs pinned on CPU 0; nginx and wrk
share CPU 1 (``taskset``).

Per run and proxy it records wrk's requests/s and latency p50/p99, the error
counts (socket errors, non-2xx/3xx answers) and the headline number: the proxy
process's CPU time (utime + stime from /proc/PID/stat, read right before and
right after the measured wrk run) divided by the requests wrk completed, i.e.
microseconds of CPU per proxied request.

Results: a table on the terminal and JSON in bench/results/http_vs_haproxy-<timestamp>.json.
Every child process is killed on exit, also on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROXIES = ("haproxy", "steelyard")
PROXY_CPU, LOAD_CPU = "0", "1"  # the proxy alone on CPU 0; nginx and wrk on CPU 1

# wrk prints its summary as one JSON line from this script's done() hook:
# exact counts and percentiles (in µs) instead of parsing rounded text.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


class BenchError(Exception):
    pass


# --- child processes ------------------------------------------------------------

PR_SET_PDEATHSIG = 1
try:  # resolved here, so the child only makes the call (no lookup between fork and exec)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


class Children:
    """Every process the benchmark starts; ``kill_all`` stops them (TERM, then KILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(
        self, argv: list[str], *, cpu: str | None, log: Path | None = None, capture: bool = False
    ) -> subprocess.Popen:
        if cpu is not None:
            argv = ["taskset", "-c", cpu, *argv]  # taskset execs: the pid is the program's own
        out = subprocess.PIPE if capture else (open(log, "wb") if log else subprocess.DEVNULL)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script; it stops the children itself
            preexec_fn=_die_with_parent,  # and if this script is killed outright, they die too
        )
        if log and not capture:
            out.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def kill_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc, timeout=3.0)
            except Exception as exc:  # keep going: every child must go
                print(f"bench: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


class OutputTail(threading.Thread):
    """Drains a child's stdout (so it never blocks) and keeps every line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.start()

    def run(self) -> None:
        for raw in self.proc.stdout:  # type: ignore[union-attr]
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if m := pattern.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.is_alive():
                    return None
                self.cond.wait(min(left, 0.1))

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.lines)


# --- helpers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """utime + stime of a whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5), counted after "comm"


def machine_busy_ticks() -> int:
    """Non-idle CPU time of the whole machine (all CPUs), in clock ticks."""
    with open("/proc/stat", "rb") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def reaped_children_cpu() -> float:
    """CPU seconds of this script's children that have exited and been waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def http_get(port: int, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET / on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def wait_serving(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    """Until GET / through ``port`` answers 200 "ok"; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} while starting")
        try:
            status, body = http_get(port)
            if status == 200 and body == b"ok\n":
                return
            last = f"HTTP {status} {body[:80]!r}"
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise BenchError(f'{what} did not answer 200 "ok" on 127.0.0.1:{port} within {timeout:g}s (last: {last})')


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- configurations ---------------------------------------------------------------


def nginx_conf(tmp: Path, port: int) -> str:
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/nginx-client-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def haproxy_conf(port: int, backend: int) -> str:
    # Same work on the wire as steelyard, which always adds X-Forwarded-For/-Proto/-Host.
    return f"""
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    option forwardfor
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-request 30s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend nginx

backend nginx
    server nginx 127.0.0.1:{backend}
"""


def steelyard_conf(port: int, backend: int) -> str:
    return f"""
workers = 1
shutdown_grace = "2s"

[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
mode = "http"
pool = "nginx"
keepalive_timeout = "60s"
request_timeout = "30s"

[[pool]]
name = "nginx"
algorithm = "round_robin"
servers = [{{ address = "127.0.0.1:{backend}" }}]
connect_timeout = "2s"
timeout = "30s"
max_idle = 1024
idle_timeout = "60s"
"""


# --- the benchmark ----------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tools: dict[str, str], tmp: Path) -> None:
        self.args = args
        self.tools = tools
        self.tmp = tmp
        self.kids = Children()
        self.pin = bool(tools.get("taskset")) and not args.no_pin
        self.tick = os.sysconf("SC_CLK_TCK")
        self.lua = tmp / "summary.lua"
        self.lua.write_text(WRK_LUA)
        self.nginx: subprocess.Popen | None = None
        self.nginx_port = 0

    def cpu(self, which: str) -> str | None:
        return which if self.pin else None

    def start_nginx(self) -> None:
        self.nginx_port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(nginx_conf(self.tmp, self.nginx_port))
        self.nginx = self.kids.start(
            [self.tools["nginx"], "-p", str(self.tmp), "-c", str(conf)],
            cpu=self.cpu(LOAD_CPU),
            log=self.tmp / "nginx.out",
        )
        try:
            wait_serving(self.nginx_port, self.nginx, "nginx")
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self._file_text('nginx.out')}{self._file_text('nginx-error.log')}") from None

    def _file_text(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.tmp / name).read_text(errors="replace")
        return ""

    def start_proxy(self, name: str) -> tuple[subprocess.Popen, int, OutputTail]:
        port = free_port()
        conf = self.tmp / f"{name}.cfg"
        if name == "haproxy":
            conf.write_text(haproxy_conf(port, self.nginx_port))
            check = subprocess.run([self.tools["haproxy"], "-c", "-q", "-f", str(conf)], capture_output=True, text=True)
            if check.returncode != 0:
                raise BenchError(f"haproxy rejects its configuration:\n{check.stdout}{check.stderr}")
            argv = [self.tools["haproxy"], "-db", "-f", str(conf)]  # -db: foreground, one process
        else:
            conf.write_text(steelyard_conf(port, self.nginx_port))
            argv = [self.tools["steelyard"], "serve", "--config", str(conf)]
        proc = self.kids.start(argv, cpu=self.cpu(PROXY_CPU), capture=True)
        tail = OutputTail(proc)
        if name == "steelyard":
            ready = tail.wait_for(re.compile(r"steelyard: listener \S+ serving http on (\S+):(\d+)"), 15.0)
            if ready is None:
                self.kids.stop(proc)
                tail.join(2)
                raise BenchError(
                    f"steelyard did not report ready (exit status {proc.returncode}); its output:\n{tail.text()}"
                )
        try:
            wait_serving(port, proc, name)
        except BenchError as exc:
            self.kids.stop(proc)
            tail.join(2)
            raise BenchError(f"{exc}; its output:\n{tail.text()}") from None
        return proc, port, tail

    def wrk(self, port: int, duration: float, connections: int, path: str = "/", extra: tuple = ()) -> dict:
        argv = [
            self.tools["wrk"],
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            *extra,
            "-s",
            str(self.lua),
            f"http://127.0.0.1:{port}{path}",
        ]
        if self.pin:
            argv = ["taskset", "-c", LOAD_CPU, *argv]
        proc = self.kids.start(argv, cpu=None, capture=True)
        try:
            out, _ = proc.communicate(timeout=duration + 60)
        finally:
            self.kids.stop(proc)
        text = out.decode(errors="replace")
        m = re.search(r"^WRKJSON (\{.*\})$", text, re.M)
        if proc.returncode != 0 or m is None:
            raise BenchError(f"wrk failed (exit status {proc.returncode}):\n{text}")
        res = json.loads(m.group(1))
        res["output"] = text.replace(m.group(0), "").rstrip()
        return res

    def measure(self, name: str, run: int) -> dict:
        a = self.args
        proc, port, tail = self.start_proxy(name)
        try:
            if a.warmup > 0:
                self.wrk(port, a.warmup, a.connections)
            time.sleep(0.2)
            before = (
                cpu_ticks(proc.pid),
                cpu_ticks(self.nginx.pid),
                time.monotonic(),  # type: ignore[union-attr]
                machine_busy_ticks(),
                reaped_children_cpu(),
            )
            w = self.wrk(port, a.duration, a.connections)
            after = (
                cpu_ticks(proc.pid),
                cpu_ticks(self.nginx.pid),
                time.monotonic(),  # type: ignore[union-attr]
                machine_busy_ticks(),
                reaped_children_cpu(),
            )
            threads = thread_count(proc.pid)
            alive = proc.poll() is None
        finally:
            self.kids.stop(proc)
            tail.join(3)
        reqs = w["requests"]
        proxy_cpu = (after[0] - before[0]) / self.tick
        nginx_cpu = (after[1] - before[1]) / self.tick
        wall = after[2] - before[2]
        wrk_cpu = after[4] - before[4]  # only wrk exited during the window
        # CPU the machine spent on anything else (other programs, kernel threads): noise
        others = max(0.0, (after[3] - before[3]) / self.tick - proxy_cpu - nginx_cpu - wrk_cpu)
        socket_errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
        return {
            "proxy": name,
            "run": run,
            "port": port,
            "requests": reqs,
            "duration_s": w["duration_us"] / 1e6,
            "rps": reqs / (w["duration_us"] / 1e6) if w["duration_us"] else 0.0,
            "p50_ms": w["p50_us"] / 1000,
            "p90_ms": w["p90_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "max_ms": w["max_us"] / 1000,
            "mean_ms": w["mean_us"] / 1000,
            "non_2xx_3xx": w["status"],
            "socket_errors": {k: w[k] for k in ("connect", "read", "write", "timeout")},
            "errors": w["status"] + socket_errors,
            "proxy_cpu_s": proxy_cpu,
            "proxy_cpu_us_per_req": proxy_cpu / reqs * 1e6 if reqs else float("nan"),
            "proxy_cpu_util": proxy_cpu / wall if wall else float("nan"),
            "nginx_cpu_us_per_req": nginx_cpu / reqs * 1e6 if reqs else float("nan"),
            "nginx_cpu_util": nginx_cpu / wall if wall else float("nan"),
            "wrk_cpu_util": wrk_cpu / wall if wall else float("nan"),
            "other_cpu_util": others / wall if wall else float("nan"),  # in CPUs, out of os.cpu_count()
            "proxy_threads": threads,
            "proxy_alive_after": alive,
            "proxy_output": tail.text(),
            "wrk_output": w["output"],
        }

    def profile(self) -> dict:
        """One extra steelyard run under py-spy: hottest functions by self time."""
        a = self.args
        spy = self.tools.get("py-spy")
        if not spy:
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        proc, port, tail = self.start_proxy("steelyard")
        raw = self.tmp / "steelyard.folded"
        try:
            if a.warmup > 0:
                self.wrk(port, a.warmup, a.connections)
            argv = [
                spy,
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                f"{max(1, round(a.duration))}",
                "--rate",
                str(a.profile_rate),
                "--format",
                "raw",
                "--output",
                str(raw),
                # without --nonblocking py-spy stops the process for each sample, and here
                # the stops land almost only on syscalls: the profile then shows nothing but
                # transport.write and the event loop. Non-blocking samples are unbiased (a
                # few are dropped as inconsistent reads).
                "--nonblocking",
            ]
            spy_proc = self.kids.start(argv, cpu=LOAD_CPU if self.pin else None, log=self.tmp / "py-spy.out")
            time.sleep(0.5)  # let py-spy attach
            w = self.wrk(port, a.duration, a.connections)
            try:
                spy_proc.wait(a.duration + 30)
            finally:
                self.kids.stop(spy_proc)
        finally:
            self.kids.stop(proc)
            tail.join(3)
        if not raw.exists():
            raise BenchError(f"py-spy wrote no profile:\n{self._file_text('py-spy.out')}")
        self_time: Counter[str] = Counter()
        total_time: Counter[str] = Counter()
        samples = 0
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            samples += n
            frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            self_time[_frame_name(frames[-1])] += n
            for fn in {_frame_name(f) for f in frames}:
                total_time[fn] += n
        folded = RESULTS / f"steelyard-profile-{_stamp()}.folded"
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(raw, folded)
        return {
            "samples": samples,
            "rate": a.profile_rate,
            "folded_stacks": str(folded.relative_to(ROOT)),
            "wrk_rps_under_profiler": w["requests"] / (w["duration_us"] / 1e6) if w["duration_us"] else 0,
            "top_self": [
                {
                    "function": fn,
                    "samples": n,
                    "self_pct": 100 * n / samples if samples else 0,
                    "total_pct": 100 * total_time[fn] / samples if samples else 0,
                }
                for fn, n in self_time.most_common(a.profile_top)
            ],
        }


def _frame_name(frame: str) -> str:
    """py-spy's ``function (path/to/file.py:123)`` -> ``function (file.py)``, merging lines of one function."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    fn, path = m.groups()
    parts = Path(path).parts
    short = "/".join(parts[parts.index("steelyard") :]) if "steelyard" in parts else Path(path).name
    return f"{fn} ({short})"


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# --- reporting ----------------------------------------------------------------------


def summarize(rows: list[dict], proxies: list[str]) -> dict:
    out = {}
    for name in proxies:
        mine = [r for r in rows if r["proxy"] == name]
        if mine:
            out[name] = {
                k: median([r[k] for r in mine])
                for k in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "proxy_cpu_us_per_req",
                    "proxy_cpu_util",
                    "nginx_cpu_us_per_req",
                    "nginx_cpu_util",
                    "wrk_cpu_util",
                    "other_cpu_util",
                )
            }
            out[name]["errors"] = sum(r["errors"] for r in mine)
            out[name]["runs"] = len(mine)
    if "steelyard" in out and "haproxy" in out:
        out["ratio_steelyard_over_haproxy"] = {
            "cpu_us_per_req": out["steelyard"]["proxy_cpu_us_per_req"] / out["haproxy"]["proxy_cpu_us_per_req"],
            "rps": out["steelyard"]["rps"] / out["haproxy"]["rps"],
            "p50": out["steelyard"]["p50_ms"] / out["haproxy"]["p50_ms"],
            "p99": out["steelyard"]["p99_ms"] / out["haproxy"]["p99_ms"],
        }
    return out


def print_table(rows: list[dict], summary: dict, proxies: list[str], title: str) -> None:
    header = ["proxy", "run", "req/s", "p50 ms", "p99 ms", "µs CPU/req", "proxy CPU", "other CPU", "errors"]

    def cells(name: str, run: str, r: dict) -> list[str]:
        return [
            name,
            run,
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['proxy_cpu_us_per_req']:.1f}",
            f"{100 * r['proxy_cpu_util']:.0f}%",
            f"{100 * r['other_cpu_util']:.0f}%",
            str(r["errors"]),
        ]

    body: list[list[str] | None] = []
    for name in proxies:
        mine = [r for r in rows if r["proxy"] == name]
        if not mine:
            continue
        body += [cells(name, str(r["run"]), r) for r in mine]
        if len(mine) > 1:
            body.append(cells(name, "median", summary[name]))
        body.append(None)
    while body and body[-1] is None:
        body.pop()
    ratio = summary.get("ratio_steelyard_over_haproxy")
    foot = (
        (
            f"steelyard / haproxy (medians): CPU per request ×{ratio['cpu_us_per_req']:.2f}, "
            f"req/s ×{ratio['rps']:.2f}, p50 ×{ratio['p50']:.2f}, p99 ×{ratio['p99']:.2f}"
        )
        if ratio
        else ""
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in body if c)) for i, h in enumerate(header)]
        print(title)
        print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        for c in body:
            print("  ".join(x.rjust(w) for x, w in zip(c, widths, strict=True)) if c else "")
        if foot:
            print(foot)
        return
    table = Table(title=title, caption=foot or None)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for c in body:
        if c is None:
            table.add_section()
        else:
            table.add_row(*c, style="bold" if c[1] == "median" else None)
    console = Console()
    if console.width < 110:  # not a terminal (make, a pipe): rich would squeeze the columns
        console = Console(width=110)
    console.print(table)


def machine_info() -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "?"
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "steelyard_commit": commit,
    }


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="steelyard vs HAProxy: throughput, latency, CPU per request.")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each measured wrk run (default 10)")
    p.add_argument("--connections", type=int, default=50, help="wrk keep-alive connections (default 50)")
    p.add_argument("--runs", type=int, default=1, help="measured runs per proxy; the median is reported too")
    p.add_argument("--only", choices=PROXIES, help="benchmark one proxy only")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of the unmeasured wrk run first (default 2)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, one more steelyard run under py-spy: top functions by self time",
    )
    p.add_argument("--profile-rate", type=int, default=500, help="py-spy samples per second (default 500)")
    p.add_argument("--profile-top", type=int, default=15, help="functions listed (default 15)")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.connections < 1 or a.runs < 1 or a.warmup < 0:
        p.error("--duration and --connections and --runs must be positive, --warmup not negative")
    return a


def find_tools() -> dict[str, str]:
    tools = {n: find_tool(n) for n in ("haproxy", "nginx", "wrk")}
    missing = [n for n, path in tools.items() if not path]
    if missing:
        raise BenchError(f"missing: {', '.join(missing)}. Install them with:\n    apt-get install haproxy nginx wrk")
    bindir = Path(sys.executable).parent
    steelyard = bindir / "steelyard"
    if not os.access(steelyard, os.X_OK):
        steelyard = Path(shutil.which("steelyard") or "")
        if not steelyard.name:
            raise BenchError("the steelyard command is not installed: run `make install` first")
    tools["steelyard"] = str(steelyard)
    tools["taskset"] = shutil.which("taskset") or ""
    spy = bindir / "py-spy"
    tools["py-spy"] = str(spy) if os.access(spy, os.X_OK) else (shutil.which("py-spy") or "")
    return tools  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tools = find_tools()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if not tools["taskset"] and not args.no_pin:
        print("bench: taskset not found: processes are not pinned (numbers are noisier)", file=sys.stderr)
    if (os.cpu_count() or 1) < 2 and not args.no_pin:
        print("bench: fewer than 2 CPUs: not pinning", file=sys.stderr)
        args.no_pin = True

    def on_term(signum, frame):  # SIGTERM/SIGHUP: unwind like Ctrl-C so the children are stopped
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    tick = os.sysconf("SC_CLK_TCK")
    busy0 = machine_busy_ticks()
    time.sleep(1.0)
    idle_load = (machine_busy_ticks() - busy0) / tick
    if idle_load > 0.1:
        print(
            f"bench: warning: the machine is already busy ({100 * idle_load:.0f}% of a CPU in use before "
            "starting); other programs skew the numbers (see the 'other CPU' column)",
            file=sys.stderr,
        )
    proxies = [args.only] if args.only else list(PROXIES)
    rows: list[dict] = []
    failures: list[dict] = []
    prof: dict | None = None
    started = dt.datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="steelyard-bench-") as tmpdir:
        bench = Bench(args, tools, Path(tmpdir))
        try:
            bench.start_nginx()
            print(
                f"bench: nginx on 127.0.0.1:{bench.nginx_port}; "
                f"{'proxy on CPU 0, nginx and wrk on CPU 1' if bench.pin else 'no CPU pinning'}; "
                f"wrk -t1 -c{args.connections} -d{args.duration:g}s after a {args.warmup:g}s warm-up, "
                f"{args.runs} run(s)",
                flush=True,
            )
            for run in range(1, args.runs + 1):
                for name in proxies:  # interleaved, so drift on the machine hits both alike
                    print(f"bench: run {run}/{args.runs}: {name} ...", end=" ", flush=True)
                    try:
                        r = bench.measure(name, run)
                    except BenchError as exc:
                        print("FAILED", flush=True)
                        print(f"bench: {name}: {exc}", file=sys.stderr)
                        failures.append({"proxy": name, "run": run, "error": str(exc)})
                        continue
                    rows.append(r)
                    print(
                        f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                        f"{r['proxy_cpu_us_per_req']:.1f} µs CPU/req, errors {r['errors']}",
                        flush=True,
                    )
                    if r["other_cpu_util"] > 0.05:
                        print(
                            f"bench: note: other processes used {100 * r['other_cpu_util']:.0f}% of a CPU "
                            "during this run: numbers are noisier",
                            file=sys.stderr,
                        )
                    if r["errors"]:
                        print(
                            f"bench: {name}: ERRORS under load: non-2xx/3xx {r['non_2xx_3xx']}, "
                            f"socket errors {r['socket_errors']}\n--- wrk ---\n{r['wrk_output']}",
                            file=sys.stderr,
                        )
                    if r["errors"] or not r["proxy_alive_after"] or (name == "steelyard" and _noisy(r)):
                        print(f"--- {name} output ---\n{r['proxy_output'] or '(none)'}", file=sys.stderr)
            if args.profile and "steelyard" in proxies:
                print("bench: profiling steelyard with py-spy ...", flush=True)
                try:
                    prof = bench.profile()
                except BenchError as exc:
                    print(f"bench: profile: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nbench: interrupted; stopping every child process", file=sys.stderr)
            bench.kids.kill_all()
            return 130
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.kids.kill_all()

    summary = summarize(rows, proxies)
    print()
    if not rows:
        print("bench: no run succeeded")
    else:
        print_table(
            rows,
            summary,
            proxies,
            f"HTTP proxy benchmark: wrk -t1 -c{args.connections} -d{args.duration:g}s, keep-alive, "
            f"{os.cpu_count()} CPUs",
        )
    if prof:
        print_profile(prof)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"http_vs_haproxy-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "started": started.isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "settings": vars(args) | {"pinned": bench.pin, "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU},
                "machine": machine_info() | {"busy_before_start_cpus": idle_load},
                "versions": {
                    "haproxy": version_of([tools["haproxy"], "-v"]),
                    "nginx": version_of([tools["nginx"], "-v"]),
                    "wrk": version_of([tools["wrk"], "-v"]),
                },
                "runs": rows,
                "failures": failures,
                "summary": summary,
                "profile": prof,
            },
            indent=2,
        )
    )
    print(f"\nbench: results in {path.relative_to(ROOT)}")
    bad = failures or any(r["errors"] for r in rows)
    return 1 if bad else 0


def _noisy(r: dict) -> bool:
    """steelyard printed more than its start line: worth showing."""
    lines = [x for x in r["proxy_output"].splitlines() if x.strip()]
    return any(not x.startswith("steelyard: ") for x in lines)


def print_profile(prof: dict) -> None:
    print(
        f"\nsteelyard under py-spy ({prof['samples']} samples at {prof['rate']}/s; "
        f"{prof['wrk_rps_under_profiler']:,.0f} req/s while sampled) — top functions by self time:"
    )
    for i, f in enumerate(prof["top_self"], 1):
        print(f"  {i:2d}. {f['self_pct']:5.1f}% self  {f['total_pct']:5.1f}% total  {f['function']}")
    print(f"folded stacks (flamegraph.pl / speedscope input): {prof['folded_stacks']}")


if __name__ == "__main__":
    sys.exit(main())
