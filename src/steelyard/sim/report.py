"""The lab's output for people (a rich table) and for scripts (JSON).

Invariant: both show the same numbers; times are simulated seconds as the
scenario states them, printed with four significant digits.
"""

from __future__ import annotations

import json
from collections import defaultdict

from rich.console import Console
from rich.table import Table

from .lab import LabResult
from .results import RunResult

MAX_SERVERS_SHOWN = 6  # beyond this, shares are shown per server group


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.4g}"


def share_text(result: RunResult, groups: dict[str, str]) -> str:
    """Per-server shares, or per group (``s×100 min–max``) when there are many servers."""
    if len(result.share) <= MAX_SERVERS_SHOWN:
        return " ".join(f"{name} {100 * v:.1f}%" for name, v in result.share.items())
    by_group: dict[str, list[float]] = defaultdict(list)
    for name, v in result.share.items():
        by_group[groups.get(name, name)].append(v)
    parts = []
    for group, values in by_group.items():
        spread = f" ({100 * min(values):.2f}–{100 * max(values):.2f}% each)" if len(values) > 1 else ""
        parts.append(f"{group}×{len(values)} {100 * sum(values):.1f}%{spread}")
    return " ".join(parts)


def table(lab: LabResult) -> Table:
    scn = lab.scenario
    groups = {name: g.name for g in scn.servers for name in g.server_names()}
    theory = any(r.theory is not None for r in lab.results)
    t = Table(
        title=f"{scn.name} at load {scn.load:g}: {scn.requests:,} requests per algorithm",
        caption=scn.description or None,
    )
    t.add_column("algorithm")
    t.add_column("mean", justify="right")
    if theory:
        t.add_column("theory", justify="right")
        t.add_column("error", justify="right")
    for col in ("p50", "p99", "p99.9", "max queue", "drops", "failed"):
        t.add_column(col, justify="right")
    t.add_column("share per server")
    for r in lab.results:
        row = [r.label, _num(r.mean)]
        if theory:
            row += ["-", "-"] if r.theory is None else [_num(r.theory), f"{100 * (r.mean / r.theory - 1):+.2f}%"]
        row += [
            _num(r.p50),
            _num(r.p99),
            _num(r.p999),
            str(r.max_queue),
            str(r.drops),
            str(r.failed),
            share_text(r, groups),
        ]
        t.add_row(*row)
    return t


def print_table(lab: LabResult, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: no 80-column squeeze
            console = Console(width=200)
    console.print(table(lab))


def to_json(lab: LabResult, plots: list[str]) -> str:
    return json.dumps({**lab.to_dict(), "plots": plots}, indent=2)
