"""Throwaway: compile the L7 per-request path with mypyc (the probe in bench/mypyc-probe.md).

    .venv/bin/python bench/setup_mypyc.py SET build_ext --inplace     # SET: one of SETS below
    .venv/bin/python bench/setup_mypyc.py clean-so                    # back to pure Python

The .so files land next to the .py files in src/ (PYTHONPATH=src picks them up first).
"""

from __future__ import annotations

import glob
import os
import sys

HTTP = "src/steelyard/proxy/http/"
SETS: dict[str, list[str]] = {
    # helpers the per-request path calls: header tables, the guard, the router, the sweep's checks
    "s1": [HTTP + m + ".py" for m in ("headers", "guard", "router", "timeouts")],
    "balancer": ["src/steelyard/core/balancing/" + m + ".py" for m in ("base", "_select", "round_robin")],
}
SETS["s2"] = SETS["s1"] + [HTTP + "exchange.py", "src/steelyard/proxy/lease.py"]  # + the per-request record
SETS["s3"] = SETS["s2"] + [HTTP + m + ".py" for m in ("request", "dispatch", "downstream", "upstream", "connpool")]
SETS["s4"] = SETS["s3"] + ["src/steelyard/proxy/pool.py"] + SETS["balancer"]  # + the pool and the balancer
# beyond the brief's list: the server load counters and canned errors (listener.py cannot go: its base
# class, listening.StreamListener, is not compiled, and mypyc fails on its inherited attributes)
SETS["s5"] = SETS["s4"] + ["src/steelyard/core/model.py", HTTP + "errors.py"]


def clean() -> None:
    for so in glob.glob("src/**/*.so", recursive=True):
        os.remove(so)
        print("removed", so)


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if sys.argv[1] == "clean-so":
        clean()
        sys.exit()
    name = sys.argv.pop(1)
    files = SETS[name] if name in SETS else name.split(",")
    from mypyc.build import mypycify
    from setuptools import Distribution

    # (not setup(): that reads pyproject.toml, whose license field this venv's setuptools rejects)
    dist = Distribution(
        {
            "name": "steelyard-mypyc-probe",
            "package_dir": {"": "src"},
            "ext_modules": mypycify(files, opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"), target_dir="build/mypyc"),
        }
    )
    dist.script_name = sys.argv[0]
    dist.script_args = sys.argv[1:]
    dist.parse_command_line()
    dist.run_commands()
