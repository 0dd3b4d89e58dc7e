"""Optional parts of steelyard and the pip extra that installs each.

The core install is what serving needs (proxy, config, health checks, admin API, metrics,
DNS). Two parts pull in packages a plain balancer does not need:

- ``steelyard[redis]``: ``redis`` (+ ``hiredis``) for ``[cluster]``, ``steelyard register``,
  ``backend --register`` and the Redis session store;
- ``steelyard[plots]``: ``matplotlib`` for ``steelyard simulate``'s PNG plots.

``require(extra, feature)`` is called where a feature starts; when the package is missing it
raises ``MissingExtra`` whose message names the feature and the pip command, instead of an
ImportError traceback from deep inside.
"""

from __future__ import annotations

import importlib

EXTRAS = {"redis": "redis", "plots": "matplotlib"}  # extra -> the module it provides


class MissingExtra(RuntimeError):
    """A feature needs an optional package that is not installed."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra, self.feature = extra, feature
        super().__init__(
            f"{feature} needs the {EXTRAS[extra]!r} package, which is not installed; "
            f"install it with: pip install 'steelyard[{extra}]'"
        )


def available(extra: str) -> bool:
    try:
        importlib.import_module(EXTRAS[extra])
    except ImportError:
        return False
    return True


def require(extra: str, feature: str) -> None:
    """Raise ``MissingExtra`` unless the package of ``extra`` imports."""
    if not available(extra):
        raise MissingExtra(extra, feature)
