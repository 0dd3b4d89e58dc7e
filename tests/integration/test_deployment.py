"""The deployment files in examples/: the systemd unit (steelyard.service) and the logrotate
snippet (steelyard.logrotate), held to what docs/operations.md says of them."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from steelyard.cli import build_parser

from .conftest import pool_config, servers_toml

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
UNIT = EXAMPLES / "steelyard.service"


def directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of a key in order (ExecReload repeats)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_check_then_serve_and_reloads_with_sighup() -> None:
    unit = directives(UNIT.read_text())
    (start,), (pre,) = unit["ExecStart"], unit["ExecStartPre"]
    for command, name in ((start, "serve"), (pre, "check")):
        argv = shlex.split(command)
        assert argv[0].endswith("/steelyard")
        args = build_parser().parse_args(argv[1:])  # the flags the unit passes exist
        assert args.command == name and args.config == "/etc/steelyard/steelyard.toml"
    assert unit["ExecReload"] == [pre, "/bin/kill -HUP $MAINPID"]  # an invalid file is refused first
    assert unit["KillSignal"] == ["SIGTERM"] and unit["Type"] == ["exec"]
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("SystemCallFilter", "@system-service"),
        ("StateDirectory", "steelyard"),
        ("LogsDirectory", "steelyard"),
    ):
        assert unit[key] == [value], key


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    steelyard = str(Path(sys.executable).with_name("steelyard"))  # (this environment's entry point)
    unit = tmp_path / "steelyard.service"  # (verify needs the executables to exist: this install's)
    unit.write_text(UNIT.read_text().replace("/opt/steelyard/bin/steelyard", steelyard))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "steelyard.service" not in done.stderr, done.stderr  # no unknown key


def test_copytruncate_rotation_keeps_the_access_log_writing_from_the_start(backends, balancer, tmp_path) -> None:
    """What steelyard.logrotate relies on: after a copy and a truncation (no signal), the next
    lines land at the start of the emptied file, with no hole of zero bytes before them."""
    assert "copytruncate" in (EXAMPLES / "steelyard.logrotate").read_text()
    (a,) = backends(["a"])
    log_file = tmp_path / "access.jsonl"
    lb = balancer(
        pool_config(servers_toml([a])).replace(
            'pool = "app"\n', f'pool = "app"\n        access_log = "{log_file}"\n', 1
        )
    )

    def lines_after(path: str) -> list[dict]:
        assert httpx.get(lb.url + path).status_code == 200
        for _ in range(500):  # the log is written in batches every half second: bounded wait for it
            if log_file.exists() and path.encode() in log_file.read_bytes():
                return [json.loads(line) for line in log_file.read_text().splitlines()]
            time.sleep(0.01)
        raise AssertionError(f"{path} never reached the access log")

    assert [x["path"] for x in lines_after("/before")] == ["/before"]
    shutil.copy(log_file, tmp_path / "access.jsonl.1")
    with open(log_file, "r+b") as fh:
        fh.truncate(0)
    assert [x["path"] for x in lines_after("/after")] == ["/after"]
    assert not log_file.read_bytes().startswith(b"\0")
    assert json.loads((tmp_path / "access.jsonl.1").read_text())["path"] == "/before"
