"""PNG plots of a lab run, drawn with matplotlib's Agg backend (no screen needed).

- ``<scenario>-response.png``: mean (solid) and p99 (dotted) time in system against
  offered load, one colour per algorithm; the closed form (dashed) when there is one.
- ``<scenario>-share.png``: the share of requests each server got, per algorithm:
  bars per server when there are few, each algorithm's shares sorted when many.

Invariant: only the Agg backend is used, selected before pyplot is imported, and
every figure is closed after it is saved.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from .lab import LabResult  # noqa: E402
from .results import RunResult  # noqa: E402
from .theory import expected_mean  # noqa: E402

MANY_SERVERS = 12


def response_plot(lab: LabResult, path: Path) -> Path:
    scn = lab.scenario
    curves: dict[str, list[RunResult]] = defaultdict(list)
    for r in [*lab.sweep, *lab.results]:
        curves[r.algorithm].append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for n, algo in enumerate(scn.algorithms):
        points = sorted({r.load: r for r in curves[algo]}.values(), key=lambda r: r.load)
        colour = f"C{n % 10}"
        label = points[0].label if points else algo
        ax.plot([r.load for r in points], [r.mean for r in points], "o-", color=colour, label=f"{label} mean")
        ax.plot([r.load for r in points], [r.p99 for r in points], ":", color=colour, label=f"{label} p99")
        loads = [r.load for r in points if expected_mean(scn, algo, r.load) is not None]
        if loads:
            fine = [loads[0] + (loads[-1] - loads[0]) * i / 100 for i in range(101)]
            ax.plot(
                fine,
                [expected_mean(scn, algo, x) for x in fine],
                "--",
                color=colour,
                alpha=0.6,
                label=f"{label} theory",
            )
    ax.set_yscale("log")
    ax.set_xlabel("offered load")
    ax.set_ylabel("time in system (simulated s)")
    ax.set_title(f"{scn.name}: response time against load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def share_plot(lab: LabResult, path: Path) -> Path:
    scn = lab.scenario
    names = list(lab.results[0].share) if lab.results else []
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if len(names) <= MANY_SERVERS:
        width = 0.8 / max(1, len(lab.results))
        for n, r in enumerate(lab.results):
            xs = [i + (n - (len(lab.results) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [100 * r.share[s] for s in names], width, label=r.label, color=f"C{n % 10}")
        ax.set_xticks(range(len(names)), names)
        ax.set_xlabel("server")
    else:
        for n, r in enumerate(lab.results):
            ax.plot(sorted((100 * v for v in r.share.values()), reverse=True), label=r.label, color=f"C{n % 10}")
        ax.set_xlabel("servers, by share")
        ax.set_ylim(bottom=0)
    ax.set_ylabel("share of requests (%)")
    ax.set_title(f"{scn.name} at load {scn.load:g}: share per server")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(lab: LabResult, out: str | Path) -> list[str]:
    """Write both plots into ``out`` (created if needed); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = lab.scenario.name
    return [str(response_plot(lab, out / f"{name}-response.png")), str(share_plot(lab, out / f"{name}-share.png"))]
