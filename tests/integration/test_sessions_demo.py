"""`steelyard demo sessions` end to end (real backends, a real redis-server, the balancer in process):
every row of its table has the expected outcome."""

from __future__ import annotations

import subprocess
import sys

from .redisproc import need_redis

ROWS = {
    "round robin + memory": ("lost", "lost"),
    "sticky cookie + memory": ("kept", "lost"),
    "sticky cookie + redis": ("kept", "kept"),
    "round robin + replicated": ("kept", "kept"),
    "sticky cookie + drain (grace) + redis": ("kept", "kept"),
}


def test_demo_sessions_prints_the_expected_table() -> None:
    need_redis()
    out = subprocess.run(
        [sys.executable, "-m", "steelyard.cli", "demo", "sessions"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for label, (before, after) in ROWS.items():
        line = next(x for x in lines if x.startswith(label + " "))
        cells = line[len(label) :].split()
        assert cells[:4] == [before, after, f"{before}/{after}", "yes"], line
    assert "every row as expected" in out.stdout
