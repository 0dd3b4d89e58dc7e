"""Filter classes by name: a built-in's name, or ``package.module:Class`` (``steelyard.filters``).

The configuration calls ``resolve_filter`` for every ``use`` key, so ``steelyard check`` (and a
reload) imports the classes and refuses a missing module or class by key path. This module
imports nothing of the data plane: the configuration loads it without the proxy.
"""

from __future__ import annotations

import importlib
import re

from ...filters import Filter

BUILTIN_FILTERS: dict[str, str] = {
    "redirect_https": "steelyard.proxy.http.builtin:RedirectHttps",
    "rate_limit": "steelyard.proxy.http.builtin:RateLimit",
}
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def resolve_filter(use: str) -> type[Filter]:
    """The class ``use`` names; ``ValueError`` with a message for users when it cannot be had."""
    target = BUILTIN_FILTERS.get(use)
    if target is None:
        if ":" not in use:
            raise ValueError(
                f"unknown filter {use!r}; built-in filters are {', '.join(BUILTIN_FILTERS)}; "
                "yours are named 'package.module:ClassName'"
            )
        target = use
    module_name, _, attr = target.partition(":")
    if not _DOTTED.fullmatch(module_name) or not attr.isidentifier():
        raise ValueError(f"a filter is 'package.module:ClassName'; got {use!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for filter {use!r}: {exc}") from None
    except Exception as exc:  # (the module itself raised while it was imported)
        raise ValueError(f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no class {attr!r} (filter {use!r})")
    if not isinstance(cls, type) or not issubclass(cls, Filter):
        raise ValueError(f"{use!r} is not a filter: a filter is a subclass of steelyard.filters.Filter")
    return cls
