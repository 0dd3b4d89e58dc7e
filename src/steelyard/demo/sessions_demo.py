"""``steelyard demo sessions``: which sessions survive the death of the server that holds them.

For each setup: two ``steelyard backend --sessions ...`` processes behind an in-process balancer
(127.0.0.1, ephemeral ports), one user logs in, calls /me three times, then the server that
created the session is killed (for the drain row: drained with a grace first, then killed once
its clients moved) and /me is called three times more. A phase is "kept" when every /me answered
200 for the same user with the counter going on from where it was; otherwise "lost".
Every wait is bounded; a setup that cannot start (no redis-server) is reported as skipped.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from ..config import parse_config
from ..control.runtime import Runtime

START = 20.0
SETUPS = [  # (label, store, balancing, expected before, expected after)
    ("round robin + memory", "memory", "", "lost", "lost"),
    ("sticky cookie + memory", "memory", "cookie", "kept", "lost"),
    ("sticky cookie + redis", "redis", "cookie", "kept", "kept"),
    ("round robin + replicated", "replicated", "", "kept", "kept"),
    ("sticky cookie + drain (grace) + redis", "redis", "drain", "kept", "kept"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A child process and the first line of its output matching ``marker`` (bounded wait)."""

    def __init__(self, argv: list[str], marker: str) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.line = ""
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                if marker in line and not found.is_set():
                    self.line = line
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(START) or not self.line:
            self.kill()
            raise RuntimeError(f"{' '.join(argv[:4])}... did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def backend(name: str, spec: str, extra: list[str] = ()) -> tuple[Child, int]:
    child = Child(
        [
            sys.executable,
            "-m",
            "steelyard.cli",
            "backend",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--sessions",
            spec,
            *extra,
        ],
        "listening on",
    )
    return child, int(child.line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])


class Client:
    """A browser-like client: one cookie jar, one request per connection."""

    def __init__(self, port: int) -> None:
        self.port, self.jar = port, {}

    def get(self, path: str) -> tuple[int, str, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        cookie = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        body = resp.read()
        for header in resp.headers.get_all("Set-Cookie") or []:
            k, _, v = header.split(";")[0].partition("=")
            if v:
                self.jar[k] = v
            else:
                self.jar.pop(k, None)
        conn.close()
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return resp.status, resp.getheader("X-Served-By") or "", data


def config(ports: list[int], sticky: str) -> Any:
    servers = ", ".join(f'{{ address = "127.0.0.1:{p}", name = "b{i + 1}" }}' for i, p in enumerate(ports))
    table = ""
    if sticky:
        table = '[pool.sticky]\nmode = "cookie"\n' + ('drain_grace = "1s"\n' if sticky == "drain" else "")
    return parse_config(
        f'shutdown_grace = "1s"\n[[listener]]\nname = "web"\nbind = "127.0.0.1:0"\npool = "app"\n'
        f'[[pool]]\nname = "app"\nconnect_timeout = "1s"\nservers = [{servers}]\n{table}',
        source="<demo sessions>",
    )


async def phase(client: Client, count: int, n: int = 3) -> tuple[str, int, list[str]]:
    """n calls of /me: kept when each is 200 and the counter goes on from ``count``."""
    kept, served = True, []
    for _ in range(n):
        status, by, data = await asyncio.to_thread(client.get, "/me")
        served.append(by)
        if status == 200 and data.get("user") == "ann" and data.get("count") == count + 1:
            count += 1
        else:
            kept = False
            count = data.get("count", 0) if status == 200 else count
    return ("kept" if kept else "lost"), count, served


async def run_setup(store: str, sticky: str, redis_url: str | None) -> tuple[str, str, str]:
    children: list[Child] = []
    runtime = None
    try:
        if store == "replicated":
            rep = [free_port(), free_port()]
            for i in range(2):
                peers = [a for j, p in enumerate(rep) if j != i for a in ("--peer", f"127.0.0.1:{p}")]
                extra = ["--replicate-on", f"127.0.0.1:{rep[i]}", *peers]
                children.append(backend(f"b{i + 1}", "replicated", extra)[0])
        else:
            for i in range(2):
                children.append(backend(f"b{i + 1}", redis_url if store == "redis" else "memory")[0])
        ports = [int(c.line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]) for c in children]
        runtime = Runtime(config(ports, sticky))
        await runtime.start()
        client = Client(runtime.listeners["web"].port)
        status, holder, _ = await asyncio.to_thread(client.get, "/login?user=ann")
        if status != 200:
            return "error", "error", f"login answered {status}"
        before, count, served = await phase(client, 0)
        note = f"created on {holder}; then {','.join(served)}"
        index = int(holder[1:]) - 1
        if sticky == "drain":
            runtime.health["app"].set_state(holder, "drain")
            during, count, served = await phase(client, count, 2)
            note += f"; drain: {','.join(served)}"
            pool = runtime.pools["app"]
            deadline = time.monotonic() + 10
            while pool.draining and time.monotonic() < deadline:  # the grace runs out (bounded)
                await asyncio.sleep(0.05)
            before = "kept" if before == during == "kept" else "lost"
        children[index].kill()
        after, count, served = await phase(client, count)
        return before, after, note + f"; {holder} killed; then {','.join(served)}"
    finally:
        if runtime is not None:
            await runtime.stop(grace=0)
        for c in children:
            c.kill()


async def _main() -> list[tuple[str, str, str, str, str]]:
    rows = []
    redis = None
    if shutil.which("redis-server"):
        port = free_port()
        redis = Child(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            "Ready to accept connections",
        )
    try:
        for label, store, sticky, want_before, want_after in SETUPS:
            if store == "redis" and redis is None:
                rows.append((label, "skipped", "skipped", f"{want_before}/{want_after}", "no redis-server"))
                continue
            try:
                before, after, note = await run_setup(store, sticky, f"redis://127.0.0.1:{port}/0" if redis else None)
            except (RuntimeError, OSError) as exc:
                before, after, note = "error", "error", str(exc)
            ok = "yes" if (before, after) == (want_before, want_after) else "NO"
            rows.append((label, before, after, f"{want_before}/{want_after} {ok}", note))
    finally:
        if redis is not None:
            redis.kill()
    return rows


def run_sessions_demo() -> int:
    rows = asyncio.run(_main())
    head = ("setup", "before the kill", "after the kill", "expected", "what happened")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print("steelyard demo sessions: one user logs in, then the server holding the session is killed\n")
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    good = all(r[3].endswith("yes") for r in rows)
    print("\nevery row as expected" if good else "\nSOME ROWS ARE NOT AS EXPECTED")
    return 0 if good else 1
