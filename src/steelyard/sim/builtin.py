"""Built-in scenarios, as the dicts a TOML file would give (validated the same way).

- ``supermarket``: Mitzenmacher's supermarket model (IEEE TPDS 2001): ``n`` FIFO
  servers of rate 1, Poisson arrivals at rate λn, exponential service, each arrival
  joins the shortest of ``d`` random queues (``p2c`` with ``choices = d``; d = 1 is
  random). Shown next to the limit ``T_d(λ)``.
- ``mm1``: one server, Poisson arrivals, exponential service: an M/M/1 queue.
- ``heterogeneous``: servers of three speeds that the operator did not weight.
- ``stale``: load information refreshed every T (Mitzenmacher, "How Useful Is Old
  Information?", IEEE TPDS 2000): the least loaded server herds, d choices do not.
- ``many-balancers``: ten balancer nodes, each knowing its own requests at once and
  the others' only through a periodic refresh.
"""

from __future__ import annotations

from typing import Any

ADAPTIVE = ["round_robin", "random", "least_conn", "p2c", "least_time"]


def supermarket(n: int = 100, d: int = 2) -> dict[str, Any]:
    return {
        "name": "supermarket",
        "description": f"{n} FIFO servers of rate 1, Poisson arrivals at rate λ·{n}, exponential service; "
        f"each arrival joins the shortest of d = {d} random queues",
        "algorithms": ["p2c"],
        "options": {"choices": d},
        "theory": "supermarket",
        "load": 0.9,
        "sweep": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
        "requests": 600_000,
        "warmup": 60_000,
        "servers": [{"name": "s", "count": n}],
    }


def mm1() -> dict[str, Any]:
    return {
        "name": "mm1",
        "description": "one FIFO server, Poisson arrivals, exponential service (M/M/1)",
        "algorithms": ["round_robin"],
        "theory": "mm1",
        "load": 0.5,
        "sweep": [0.3, 0.5, 0.7, 0.8],
        "requests": 300_000,
        "warmup": 10_000,
        "servers": [{"name": "s"}],
    }


def heterogeneous() -> dict[str, Any]:
    return {
        "name": "heterogeneous",
        "description": "six servers of three speeds (2×, 1×, 0.5×), 4 requests at once each, all weight 1; "
        "lognormal service (mean 20 ms, σ 1), at most 100 waiting per server",
        "algorithms": ADAPTIVE,
        "load": 0.7,
        "sweep": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "requests": 200_000,
        "warmup": 20_000,
        "service": {"kind": "lognormal", "mean": 0.02, "sigma": 1.0},
        "options": {"ewma_decay": 1.0},
        "servers": [
            {"name": "fast", "count": 2, "speed": 2.0, "concurrency": 4, "queue": 100},
            {"name": "medium", "count": 2, "speed": 1.0, "concurrency": 4, "queue": 100},
            {"name": "slow", "count": 2, "speed": 0.5, "concurrency": 4, "queue": 100},
        ],
    }


def stale(refresh: float = 10.0) -> dict[str, Any]:
    return {
        "name": "stale",
        "description": f"100 FIFO servers of rate 1, exponential service; the balancer sees queue lengths "
        f"refreshed every {refresh:g} mean service times and nothing in between (a bulletin board)",
        "algorithms": ["random", "least_conn", "p2c"],
        "load": 0.9,
        "sweep": [0.5, 0.6, 0.7, 0.8, 0.9],
        "requests": 200_000,
        "warmup": 20_000,
        "balancers": {"refresh": refresh, "own": False},
        "servers": [{"name": "s", "count": 100}],
    }


def many_balancers(nodes: int = 10) -> dict[str, Any]:
    return {
        "name": "many-balancers",
        "description": f"{nodes} balancer nodes in front of 20 servers (concurrency 1, exponential service); "
        "each knows its own requests, and the others' as of a refresh every mean service time",
        "algorithms": ["random", "least_conn", "p2c", "least_time"],
        "load": 0.8,
        "sweep": [0.5, 0.6, 0.7, 0.8, 0.9],
        "requests": 200_000,
        "warmup": 20_000,
        "balancers": {"count": nodes, "refresh": 1.0, "own": True},
        "servers": [{"name": "s", "count": 20}],
    }


BUILTIN = {
    "supermarket": supermarket,
    "mm1": mm1,
    "heterogeneous": heterogeneous,
    "stale": stale,
    "many-balancers": many_balancers,
}
