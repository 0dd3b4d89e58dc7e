"""Real processes on 127.0.0.1 ephemeral ports: `steelyard backend` servers and `steelyard serve`.

Each process prints one line once it listens; the fixtures wait for that line (an
event), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .inline import InlineServer

STEELYARD = [sys.executable, "-m", "steelyard.cli"]
START_TIMEOUT = 20.0


class Proc:
    """A child process whose output (stdout and stderr) a thread collects line by line;
    ``wait_for(pattern)`` waits for the next line that matches (an event, not a sleep)."""

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
        self._seen = 0  # lines wait_for has looked at
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.matches = self.wait_for(pattern)

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> list[re.Match]:
        """The next line (after those already matched) that matches ``pattern``; the process is
        killed and the test fails with its output when none comes within ``timeout``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._seen < len(self.lines):
                    m = rx.search(self.lines[self._seen])
                    self._seen += 1
                    if m:
                        return [m]
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
            output = "".join(self.lines)
        self.kill()
        raise RuntimeError(f"{self.argv} did not print {pattern!r}; output:\n{output}")

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
        self._reader.join(timeout)  # every line the process wrote is in ``lines``
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join(START_TIMEOUT)


class Backend(Proc):
    def __init__(self, name: str, delay: str | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(
            [
                *STEELYARD,
                "backend",
                "--name",
                name,
                "--listen",
                f"{shown}:{port}",
                *(["--delay", delay] if delay else []),
            ],
            r"backend \S+ listening on \S+:(\d+)",
        )
        self.name = name
        self.host = host
        self.port = int(self.matches[0].group(1))
        self.address = f"{shown}:{self.port}"


class Balancer(Proc):
    def __init__(self, config_path: Path, env: dict | None = None) -> None:
        super().__init__(
            [*STEELYARD, "serve", "--config", str(config_path)],
            r"listener (\S+) serving (?:http|tcp|udp) on ([\d.]+):(\d+)",
            env,
        )
        self.config_path = config_path
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

    start.adopt = started.extend  # backends a test started itself, killed with the others
    yield start
    for b in started:
        b.kill()


@pytest.fixture
def balancer(tmp_path) -> Iterator[callable]:
    """``balancer(toml_text)`` writes the config and runs `steelyard serve` on it (``env``: more
    environment variables for it)."""
    started: list[Balancer] = []

    def start(toml: str, name: str = "steelyard.toml", env: dict | None = None) -> Balancer:
        path = tmp_path / name
        path.write_text(textwrap.dedent(toml))
        b = Balancer(path, env)
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
