"""Simulator throughput: events per second of ``steelyard.sim`` on this machine.

Runs the supermarket scenario (100 servers, p2c d = 2, load 0.9) and the stale and
heterogeneous scenarios long enough for at least ``--events`` events each, and prints
events/s. Not part of the test run (timing belongs here, not in tests).

    .venv/bin/python bench/sim_events.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import time

from steelyard.sim.builtin import heterogeneous, stale, supermarket
from steelyard.sim.engine import simulate
from steelyard.sim.scenario import parse_scenario

CASES = (
    ("supermarket d=2 λ=0.9", supermarket(100, 2), "p2c"),
    ("supermarket d=2 λ=0.9", supermarket(100, 2), "least_conn"),
    ("stale T=10", stale(10.0), "p2c"),
    ("heterogeneous", heterogeneous(), "least_time"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per case (at least)")
    args = parser.parse_args()
    print(f"{'case':28} {'algorithm':12} {'events':>10} {'seconds':>8} {'events/s':>10}")
    for title, data, algo in CASES:
        data = {**data, "requests": args.events // 2 + 1, "warmup": 0}  # an arrival and an end per request
        scn = parse_scenario(data)
        start = time.perf_counter()
        result = simulate(scn, algo)
        took = time.perf_counter() - start
        print(f"{title:28} {algo:12} {result.events:>10,} {took:>8.2f} {result.events / took:>10,.0f}")


if __name__ == "__main__":
    main()
