"""Running a scenario: every algorithm at the scenario's load, then the load sweep.

Invariants: runs are independent and deterministic (each rebuilds its nodes and
random streams from the scenario seed); sweep points run with a quarter of the
measured requests (``SWEEP_FRACTION``), since they only draw the curve; the main
load's results are the ones tabulated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .engine import simulate
from .results import RunResult
from .scenario import Scenario

SWEEP_FRACTION = 4


@dataclass
class LabResult:
    scenario: Scenario
    results: list[RunResult]  # one per algorithm, at the scenario's load
    sweep: list[RunResult] = field(default_factory=list)  # per algorithm, per sweep load

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "load": self.scenario.load,
            "results": [r.to_dict() for r in self.results],
            "sweep": [{k: v for k, v in r.to_dict().items() if k != "share"} for r in self.sweep],
        }


def sweep_scenario(scenario: Scenario) -> Scenario:
    """The scenario with the fewer requests a sweep point runs."""
    requests = max(1000, scenario.requests // SWEEP_FRACTION)
    return scenario.model_copy(update={"requests": requests, "warmup": min(scenario.warmup, requests)})


def planned_arrivals(scenario: Scenario, sweep: bool) -> int:
    """How many arrivals the lab will simulate (for a progress bar)."""
    per_run = scenario.warmup + scenario.requests
    total = per_run * len(scenario.algorithms)
    if sweep:
        small = sweep_scenario(scenario)
        total += (small.warmup + small.requests) * len(scenario.algorithms) * len(scenario.sweep)
    return total


def run_lab(scenario: Scenario, *, sweep: bool = True, progress: Callable[[int], None] | None = None) -> LabResult:
    results = [simulate(scenario, algo, progress=progress) for algo in scenario.algorithms]
    points: list[RunResult] = []
    if sweep and scenario.sweep:
        small = sweep_scenario(scenario)
        points = [
            simulate(small, algo, load, progress=progress) for algo in scenario.algorithms for load in scenario.sweep
        ]
    return LabResult(scenario, results, points)
