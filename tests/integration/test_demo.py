"""`steelyard demo`: three backends behind the balancer, every algorithm under its prefix."""

from collections import Counter

import httpx

from .conftest import STEELYARD, Proc


def test_demo_serves_every_algorithm():
    demo = Proc(
        [*STEELYARD, "demo", "--listen", "127.0.0.1:0", "--backend-port", "0"],
        r"balancer on http://127\.0\.0\.1:(\d+)",
    )
    try:
        url = f"http://127.0.0.1:{demo.matches[0].group(1)}"
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
