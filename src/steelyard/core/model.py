"""Servers and pool snapshots: the data the control plane publishes to the data plane.

Invariants:
- ``Server`` is immutable apart from its ``load`` record. Identity is the object:
  a server that is unchanged across two snapshots is the *same* object, so load
  counters and EWMAs survive a snapshot swap.
- ``ServerLoad`` is written only by the data plane (``active`` on start/finish, the
  counters and the latency histogram as requests end) and by balancers' ``on_done``
  hooks (``ewma``/``ewma_stamp``); it is never locked because one event loop owns it.
- ``PoolSnapshot`` is never mutated after it is built; publishing a new one is one
  reference assignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .balancing.base import Balancer


# upper bounds (seconds) of the response-time histogram buckets (Prometheus' default ladder)
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class ServerLoad:
    """Mutable load record of one server, shared by every snapshot that holds it."""

    __slots__ = (
        "active",
        "ewma",
        "ewma_stamp",
        "peak",
        "peak_stamp",
        "requests",
        "failures",
        "fail_streak",
        "err_streak",
        "by_class",
        "latency",
        "latency_sum",
        "resp_bytes",
        "req_bytes",
        "remote",
        "remote_ewma",
    )

    def __init__(self) -> None:
        self.active = 0  # requests (or connections) in flight right now
        self.ewma = 0.0  # seconds; least_time's moving average of response time
        self.ewma_stamp = 0.0  # clock reading of the last EWMA update
        self.peak = 0.0  # seconds; least_time's last sample above the cost (short-lived)
        self.peak_stamp = 0.0  # clock reading of the peak (0: no sample yet)
        self.requests = 0  # completed requests
        self.failures = 0  # requests that ended in a proxy-side error
        # consecutive outcomes, for passive health: proxy-side failures (connect, reset,
        # timeout), and those or 5xx responses; a good response resets both
        self.fail_streak = 0
        self.err_streak = 0
        self.by_class = [0] * 6  # responses by status class (index status // 100)
        self.latency = [0] * (len(LATENCY_BOUNDS) + 1)  # requests by duration bucket (the last: beyond)
        self.latency_sum = 0.0  # seconds
        self.resp_bytes = 0  # bytes of responses received from the server
        self.req_bytes = 0  # bytes of requests sent to it (heads as forwarded, bodies as received)
        # clustered pools only (written by the cluster's load exchange, read by the cluster-wide
        # least_conn / least_time): other balancers' recent in-flight sum and their mean EWMA
        self.remote = 0
        self.remote_ewma = 0.0

    def take_counters(self, old: ServerLoad) -> None:
        """Continue the counters of ``old`` (a server of the same name before a reload moved it to
        another address): counters only grow; the load itself (in flight, EWMA) starts afresh."""
        self.requests, self.failures, self.latency_sum = old.requests, old.failures, old.latency_sum
        self.resp_bytes, self.req_bytes = old.resp_bytes, old.req_bytes
        self.by_class, self.latency = list(old.by_class), list(old.latency)

    def __repr__(self) -> str:
        return f"ServerLoad(active={self.active}, ewma={self.ewma:.6f}, requests={self.requests})"


@dataclass(frozen=True, slots=True, eq=False)
class Server:
    """One upstream server of a pool. ``name`` defaults to ``host:port``."""

    name: str
    host: str
    port: int
    weight: int = 1
    max_conns: int = 0  # requests in flight at most; 0: no limit
    load: ServerLoad = field(default_factory=ServerLoad, repr=False)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, eq=False)
class PoolSnapshot:
    """What the data plane reads for one pool: the usable servers and their picker."""

    name: str
    servers: tuple[Server, ...]
    balancer: "Balancer"
