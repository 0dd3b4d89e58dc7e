"""Real processes on 127.0.0.1 ephemeral ports: `steelyard backend` servers and `steelyard serve`.

Each process prints one line once it listens; the fixtures wait for that line (an
event), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .inline import InlineServer

STEELYARD = [sys.executable, "-m", "steelyard.cli"]
START_TIMEOUT = 20.0


class Proc:
    """A child process whose stdout is read line by line until a pattern shows up."""

    def __init__(self, argv: list[str], pattern: str, env: dict | None = None) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.matches = self._wait_for(pattern)

    def _wait_for(self, pattern: str) -> list[re.Match]:
        rx = re.compile(pattern)
        found: list[re.Match] = []
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = rx.search(line)
            if m:
                found.append(m)
                return found
        self.kill()
        raise RuntimeError(f"{self.argv} did not print {pattern!r}; output:\n{''.join(self.lines)}")

    def pid(self) -> int:
        return self.proc.pid

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if self.proc.stdout:
            self.lines.extend(self.proc.stdout.readlines())
            self.proc.stdout.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


class Backend(Proc):
    def __init__(self, name: str, delay: str | None = None) -> None:
        super().__init__(
            [*STEELYARD, "backend", "--name", name, "--listen", "127.0.0.1:0", *(["--delay", delay] if delay else [])],
            r"backend \S+ listening on 127\.0\.0\.1:(\d+)",
        )
        self.name = name
        self.port = int(self.matches[0].group(1))
        self.address = f"127.0.0.1:{self.port}"


class Balancer(Proc):
    def __init__(self, config_path: Path) -> None:
        super().__init__(
            [*STEELYARD, "serve", "--config", str(config_path)],
            r"listener (\S+) serving (?:http|tcp|udp) on ([\d.]+):(\d+)",
        )
        m = self.matches[0]
        self.port = int(m.group(3))
        self.url = f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def servers_toml(backends: list[Backend], weights: list[int] | None = None) -> str:
    weights = weights or [1] * len(backends)
    items = ", ".join(
        f'{{ address = "{b.address}", name = "{b.name}", weight = {w} }}' for b, w in zip(backends, weights)
    )
    return f"servers = [ {items} ]"


@pytest.fixture
def backends(request) -> Iterator[callable]:
    """``backends(3)`` or ``backends(["a", ("slow", "100ms")])`` starts demo backends."""
    started: list[Backend] = []

    def start(spec) -> list[Backend]:
        if isinstance(spec, int):
            spec = [f"s{i + 1}" for i in range(spec)]
        out = []
        for item in spec:
            name, delay = (item, None) if isinstance(item, str) else item
            b = Backend(name, delay)
            started.append(b)
            out.append(b)
        return out

    yield start
    for b in started:
        b.kill()


@pytest.fixture
def balancer(tmp_path) -> Iterator[callable]:
    """``balancer(toml_text)`` writes the config and runs `steelyard serve` on it."""
    started: list[Balancer] = []

    def start(toml: str, name: str = "steelyard.toml") -> Balancer:
        path = tmp_path / name
        path.write_text(textwrap.dedent(toml))
        b = Balancer(path)
        started.append(b)
        return b

    yield start
    for b in started:
        b.kill()


@pytest.fixture
def inline() -> Iterator[callable]:
    """``inline(handler)`` starts an ``InlineServer`` (tests/integration/inline.py), closed after the test."""
    started: list[InlineServer] = []

    def start(handler) -> InlineServer:
        s = InlineServer(handler)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def pool_config(servers: str, extra: str = "") -> str:
    """One listener on an ephemeral port in front of one pool "app" (``servers`` is TOML)."""
    return f"""
        shutdown_grace = "5s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [[pool]]
        name = "app"
        {servers}
        {extra}
    """


def address_config(port: int, extra: str = "") -> str:
    """The same, for one server on 127.0.0.1:``port`` that is not a demo backend."""
    return pool_config(f'servers = [ {{ address = "127.0.0.1:{port}" }} ]', extra)


def simple_config(backends: list[Backend], algorithm: str = "round_robin", extra_pool: str = "", weights=None) -> str:
    return pool_config(servers_toml(backends, weights), f'algorithm = "{algorithm}"\n{extra_pool}')
