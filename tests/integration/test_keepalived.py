"""A floating address with keepalived: two balancer nodes and a client in network namespaces this
test creates (a bridge in a fourth one), keepalived on each node running `steelyard health` as its
track script. The master's steelyard is killed; the address moves to the backup, and the test
reports how long that took and how many client requests failed meanwhile.

Traffic stays inside the namespaces the test made (10.99.0.0/24 on their own bridge) and on each
namespace's loopback. Namespaces need root (CI runs as root); where they are not permitted the
test says so and skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

WAIT = 20.0
VIP = "10.99.0.100"
TAG = f"sy{os.getpid() % 100000}"
NS = {name: f"{TAG}-{name}" for name in ("sw", "lb1", "lb2", "cl")}
ADDR = {"lb1": "10.99.0.1", "lb2": "10.99.0.2", "cl": "10.99.0.10"}
PY = [sys.executable, "-m", "steelyard.cli"]

CLIENT = textwrap.dedent(f"""
    import http.client, sys, time
    end = time.monotonic() + float(sys.argv[1])
    for _ in range(100_000):  # bounded in count and in time
        if time.monotonic() > end:
            break
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection("{VIP}", 8080, timeout=0.5)
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            print(f"{{t:.3f}} {{r.status}} {{r.getheader('x-served-by')}}", flush=True)
            c.close()
        except Exception as exc:
            print(f"{{t:.3f}} fail {{type(exc).__name__}}", flush=True)
            time.sleep(0.05)
""")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT, check=check)


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", NS[ns], *argv]


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and iproute2; this machine has neither or is not root")
    made = []
    try:
        for ns in NS.values():
            out = sh("ip", "netns", "add", ns, check=False)
            if out.returncode != 0:
                pytest.skip(f"network namespaces are not permitted here: {out.stderr.strip()}")
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sw = NS["sw"]
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for i, name in enumerate(("lb1", "lb2", "cl"), 1):
            port = f"p{i}"
            sh("ip", "-n", NS[name], "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", sw)
            sh("ip", "-n", sw, "link", "set", port, "master", "br0")
            sh("ip", "-n", sw, "link", "set", port, "up")
            sh("ip", "-n", NS[name], "addr", "add", f"{ADDR[name]}/24", "dev", "eth0")
            sh("ip", "-n", NS[name], "link", "set", "eth0", "up")
        yield
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def node_config(tmp: Path, name: str, priority: int) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""
        shutdown_grace = "1s"

        [[listener]]
        name = "web"
        bind = "0.0.0.0:8080"
        pool = "app"

        [[pool]]
        name = "app"
        servers = [ {{ address = "127.0.0.1:9001", name = "{name}-app" }} ]

        [keepalived]
        interface = "eth0"
        virtual_ipaddress = "{VIP}/24"
        virtual_router_id = 77
        priority = {priority}
        advert_interval = "300ms"
        check_interval = "1s"
        fall = 2
        rise = 1
    """)
    )
    return path


def holds_vip(name: str) -> bool:
    return f"{VIP}/24" in sh("ip", "-n", NS[name], "addr", "show", "dev", "eth0").stdout


def wait_until(predicate, what: str, logs: Path | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < WAIT:
        if predicate():
            return time.monotonic()
        time.sleep(0.05)  # polling the namespaces' state (each poll runs `ip`)
    said = "".join(f"\n--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(logs.glob("*.log"))) if logs else ""
    pytest.fail(f"timed out waiting for {what}{said}")


def test_the_floating_address_moves_when_the_masters_balancer_dies(namespaces, tmp_path):
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, priority in (("lb1", 150), ("lb2", 100)):
            cfg = node_config(tmp_path, name, priority)
            conf = tmp_path / f"{name}.keepalived.conf"
            out = sh(*PY, "keepalived", "--config", str(cfg), "--output", str(conf))
            assert out.returncode == 0, out.stderr
            assert "virtual_router_id 77" in conf.read_text() and "steelyard_serving" in conf.read_text()
            procs[f"{name}-backend"] = subprocess.Popen(
                in_ns(name, *PY, "backend", "--name", f"{name}-app", "--listen", "127.0.0.1:9001"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs[f"{name}-lb"] = subprocess.Popen(
                in_ns(name, *PY, "serve", "--config", str(cfg)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_until(
                lambda n=name, c=cfg: sh(*in_ns(n, *PY, "health", "--config", str(c)), check=False).returncode == 0,
                f"{name} serving",
            )
            run = tmp_path / name
            procs[f"{name}-ka"] = subprocess.Popen(
                in_ns(
                    name,
                    "keepalived",
                    "--dont-fork",
                    "--log-console",
                    "--vrrp",
                    "-f",
                    str(conf),
                    "-p",
                    f"{run}.pid",
                    "-r",
                    f"{run}.vrrp.pid",
                    "-c",
                    f"{run}.checkers.pid",
                ),
                stdout=open(f"{run}.keepalived.log", "w"),
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: holds_vip("lb1") and not holds_vip("lb2"), "lb1 to hold the address", tmp_path)
        client_log = tmp_path / "client.log"
        with open(client_log, "w") as fh:
            client = subprocess.Popen(
                in_ns("cl", sys.executable, "-c", CLIENT, "10"), stdout=fh, stderr=subprocess.STDOUT
            )
            wait_until(lambda: "lb1-app" in client_log.read_text(), "the client to reach lb1")
            procs["lb1-lb"].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            moved = wait_until(lambda: holds_vip("lb2"), "the address to move to lb2", tmp_path)
            client.wait(WAIT)
        lines = [line.split() for line in client_log.read_text().splitlines()]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    failed = [x for x in lines if x[1] == "fail" or x[1] != "200"]
    after = [x for x in lines if x[1] == "200" and x[2] == "lb2-app"]
    assert after, "the backup never answered on the floating address"
    first_lb2 = float(after[0][0])
    in_gap = [x for x in failed if float(x[0]) < first_lb2]
    print(
        f"\nkeepalived: address moved {1000 * (moved - killed):.0f} ms after the kill; "
        f"{len(lines)} requests, {len(failed)} failed ({len(in_gap)} before lb2 answered), "
        f"then lb2 served {len(after)}"
    )
    assert all(x[2] == "lb2-app" for x in lines if x[1] == "200" and float(x[0]) > first_lb2)
