"""`steelyard demo`: three backends behind the balancer, every algorithm under its prefix."""

import json
import socket
import subprocess
from collections import Counter

import httpx

from .conftest import STEELYARD, Proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serves_every_algorithm():
    port = free_port()
    demo = Proc(
        [*STEELYARD, "demo", "--listen", f"127.0.0.1:{port}", "--backend-port", "0", "--admin", "127.0.0.1:0"],
        r"balancer on http://127\.0\.0\.1:(\d+)",
    )
    try:
        assert int(demo.matches[0].group(1)) == port  # the balancer is where --listen says
        admin = demo.wait_for(r"dashboard: +(http://127\.0\.0\.1:\d+)/$")[0].group(1)
        assert demo.wait_for(r"metrics: +(\S+)")[0].group(1) == admin + "/metrics"
        ctl = demo.wait_for(r"ctl: +\.venv/bin/steelyard (ctl .*servers app)")[0].group(1).split()
        shown = subprocess.run([*STEELYARD, *ctl, "--json"], capture_output=True, text=True, timeout=10)
        assert shown.returncode == 0, shown.stderr
        assert {s["server"] for s in json.loads(shown.stdout)["servers"]} == {"fast", "medium", "slow"}
        assert httpx.get(admin + "/metrics").text.count("steelyard_server_http_responses_total") > 0
        assert "<title>steelyard" in httpx.get(admin + "/").text  # the dashboard
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10) as client:
            rr = Counter(client.get(url + "/").headers["x-served-by"] for _ in range(6))
            assert rr == {"fast": 2, "medium": 2, "slow": 2}
            weighted = Counter(client.get(url + "/weighted/").headers["x-served-by"] for _ in range(7))
            assert weighted == {"fast": 5, "medium": 1, "slow": 1}
            for prefix in ("ip_hash", "hash", "least_conn", "least_time", "random", "p2c"):
                r = client.get(f"{url}/{prefix}/x")
                assert r.status_code == 200 and r.headers["x-served-by"] in {"fast", "medium", "slow"}
            same = {client.get(url + "/hash/some/key").headers["x-served-by"] for _ in range(5)}
            assert len(same) == 1
        assert demo.terminate() == 0
    finally:
        demo.kill()
