"""``steelyard simulate``: arguments, scenario overrides, progress, table, JSON and plots.

Invariants: a bad argument or scenario is one message on stderr and exit status 2
(no traceback); command-line overrides are applied to the scenario's raw keys before
validation, so their errors name the key they set (``load``, ``options → choices``).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from ..extras import MissingExtra, available
from .builtin import BUILTIN
from .scenario import ScenarioError, parse_scenario


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario", "-s", default="supermarket", help=f"a built-in scenario ({', '.join(BUILTIN)}) or a TOML file"
    )
    p.add_argument("--load", type=float, help="offered load (arrival rate ÷ total capacity), e.g. 0.9")
    p.add_argument("--d", type=int, help="choices of p2c (the supermarket's d; 1 is random)")
    p.add_argument("--algorithm", "-a", action="append", help="algorithm to run (repeatable); default: the scenario's")
    p.add_argument("--requests", type=int, help="measured requests per run")
    p.add_argument("--warmup", type=int, help="requests before the measured ones")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--refresh", type=float, help="seconds between load-information refreshes (0: current)")
    p.add_argument("--balancers", type=int, help="number of balancer nodes")
    p.add_argument("--sweep", help="comma-separated loads for the response-time plot, e.g. 0.5,0.7,0.9")
    p.add_argument("--out", default="sim-out", help="directory for the PNG plots (default: sim-out)")
    p.add_argument("--no-plot", action="store_true", help="no load sweep and no plots")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _raw(source: str) -> tuple[dict[str, Any], str]:
    if source in BUILTIN:
        return BUILTIN[source](), f"scenario {source}"
    path = Path(source)
    if not path.suffix and not path.exists():
        raise ScenarioError(
            "steelyard simulate",
            [("", f"no built-in scenario or file {source!r}; built-in scenarios: {', '.join(BUILTIN)}")],
        )
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8")), str(path)
    except OSError as exc:
        raise ScenarioError(str(path), [("", f"cannot read file: {exc.strerror or exc}")]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(str(path), [("", f"invalid TOML: {exc}")]) from None


def build_scenario(args: argparse.Namespace):
    data, source = _raw(args.scenario)
    set_top = {"load": args.load, "requests": args.requests, "warmup": args.warmup, "seed": args.seed}
    data.update({k: v for k, v in set_top.items() if v is not None})
    if args.algorithm:
        data["algorithms"] = args.algorithm
    if args.sweep is not None:
        try:
            data["sweep"] = [float(x) for x in args.sweep.split(",") if x.strip()]
        except ValueError:
            raise ScenarioError("--sweep", [("", f"expected loads separated by commas; got {args.sweep!r}")]) from None
    if args.d is not None:
        data["options"] = {**data.get("options", {}), "choices": args.d}
    nodes = {"refresh": args.refresh, "count": args.balancers}
    if any(v is not None for v in nodes.values()):
        data["balancers"] = {**data.get("balancers", {}), **{k: v for k, v in nodes.items() if v is not None}}
    return parse_scenario(data, source)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .lab import planned_arrivals, run_lab
    from .report import print_table, to_json

    try:
        scenario = build_scenario(args)
    except ScenarioError as err:
        print(f"steelyard simulate: invalid scenario\n{err}", file=sys.stderr)
        return 2
    sweep = not args.no_plot
    err_console = Console(stderr=True)
    if err_console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("simulating {task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task(scenario.name, total=planned_arrivals(scenario, sweep))
            lab = run_lab(scenario, sweep=sweep, progress=lambda k: bar.advance(task, k))
    else:
        lab = run_lab(scenario, sweep=sweep)
    plots: list[str] = []
    if not args.no_plot and not available("plots"):
        print(
            f"steelyard simulate: no plots: {MissingExtra('plots', 'drawing plots')} (or pass --no-plot)",
            file=sys.stderr,
        )
    elif not args.no_plot:
        from .plots import write_plots

        try:
            plots = write_plots(lab, args.out)
        except OSError as exc:
            print(f"steelyard simulate: cannot write plots to {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if args.json:
        print(to_json(lab, plots))
    else:
        print_table(lab)
        for path in plots:
            print(f"plot: {path}")
    return 0
