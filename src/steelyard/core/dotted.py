"""Classes named in a configuration: a built-in's name, or ``package.module:ClassName``.

Custom balancing algorithms and request filters are both named this way; the configuration
resolves the name when it is read, so ``steelyard check`` imports the class and a missing
module or class is refused with a message fit for a user (``ValueError``; the caller adds the
key path).
"""

from __future__ import annotations

import importlib
import re

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # an absolute module path (no relative import)


def load_class(name: str, builtins: dict[str, str], what: str) -> object:
    """What ``name`` names: ``builtins[name]`` (a ``module:Class`` target), else ``name`` itself
    in that form. ``what`` is how messages call it ("algorithm", "filter"); the caller checks
    that the object is the kind of class it wants."""
    target = builtins.get(name)
    if target is None:
        if ":" not in name:
            choices = ", ".join(builtins)
            raise ValueError(f"unknown {what} {name!r}; choose one of {choices}, or 'package.module:ClassName'")
        target = name
    module_name, _, attr = target.partition(":")
    if not _DOTTED.fullmatch(module_name) or not attr.isidentifier():
        raise ValueError(f"a custom {what} is named 'package.module:ClassName'; got {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for {what} {name!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # (the module itself raised, or called sys.exit(), on import:
        # on a reload that must refuse the file, not end the process)
        raise ValueError(f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no class {attr!r} ({what} {name!r})")
    return cls
