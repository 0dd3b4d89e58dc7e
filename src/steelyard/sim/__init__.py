"""The algorithm lab: a discrete-event simulator of the ``core`` balancing algorithms.

``engine.simulate`` runs one algorithm under one ``Scenario`` (``scenario.py``, TOML or
the built-ins of ``builtin.py``) and returns a ``RunResult``; ``lab.run_lab`` runs a
scenario's algorithms (and its load sweep) for ``steelyard simulate``, which prints
``report.py``'s table and writes ``plots.py``'s PNGs. ``theory.py`` holds the closed
forms the tests check the engine against.
"""

from .engine import simulate
from .results import RunResult
from .scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = ["RunResult", "Scenario", "ScenarioError", "load_scenario", "parse_scenario", "simulate"]
