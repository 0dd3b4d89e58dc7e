"""What one simulation run reports, and how response times are summarised.

Invariants: percentiles are nearest-rank over every measured request that was
served (dropped and failed requests have no response time and are counted apart);
``share`` is the fraction of measured requests each server was sent, so it sums to
1 over the servers unless requests were dropped before any server was picked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from math import ceil


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank ``p``-quantile (0 < p ≤ 1) of an ascending sequence; NaN when empty."""
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered), ceil(p * len(ordered))) - 1)]


@dataclass(frozen=True)
class RunResult:
    """One algorithm under one scenario at one load."""

    scenario: str
    algorithm: str
    label: str  # the algorithm as shown (``p2c d=3`` when choices ≠ 2)
    load: float
    measured: int  # requests measured (arrived after the warm-up)
    served: int  # of those, answered
    mean: float  # seconds of simulated time
    p50: float
    p99: float
    p999: float
    max_queue: int  # most requests at one server (in service + waiting), as measured arrivals found it
    drops: int  # refused: queue full, or no server to pick
    failed: int  # lost to a server failure
    share: dict[str, float] = field(default_factory=dict)  # server name -> fraction of measured requests
    events: int = 0  # events processed (arrivals, ends, refreshes, failures)
    sim_time: float = 0.0  # simulated seconds the run covered
    theory: float | None = None  # closed-form mean time in system, when the scenario has one

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(times: list[float]) -> tuple[float, float, float, float]:
    """(mean, p50, p99, p99.9) of ``times``; sorts it in place."""
    if not times:
        nan = float("nan")
        return nan, nan, nan, nan
    times.sort()
    return sum(times) / len(times), percentile(times, 0.5), percentile(times, 0.99), percentile(times, 0.999)
