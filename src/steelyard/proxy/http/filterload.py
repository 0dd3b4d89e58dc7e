"""Filter classes by name: a built-in's name, or ``package.module:Class`` (``steelyard.filters``).

The configuration calls ``resolve_filter`` for every ``use`` key, so ``steelyard check`` (and a
reload) imports the classes and refuses a missing module or class by key path. This module
imports nothing of the data plane: the configuration loads it without the proxy.
"""

from __future__ import annotations

from ...core.dotted import load_class
from ...filters import Filter

BUILTIN_FILTERS: dict[str, str] = {
    "redirect_https": "steelyard.proxy.http.builtin:RedirectHttps",
    "rate_limit": "steelyard.proxy.http.builtin:RateLimit",
}


def resolve_filter(use: str) -> type[Filter]:
    """The class ``use`` names; ``ValueError`` with a message for users when it cannot be had."""
    cls = load_class(use, BUILTIN_FILTERS, "filter")
    if not isinstance(cls, type) or not issubclass(cls, Filter):
        raise ValueError(f"{use!r} is not a filter: a filter is a subclass of steelyard.filters.Filter")
    return cls
