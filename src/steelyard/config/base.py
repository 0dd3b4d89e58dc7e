"""Building blocks every TOML-backed model shares (``config.model``, ``config.pool`` and the
simulator's ``sim.scenario``): the error type, field types with user-facing messages, the
frozen base model, and the translation of pydantic errors into (key path, message) pairs
whose key path names list items by their ``name`` (``pool "app" → servers #2 → address``)."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError

from ..units import parse_duration, split_host_port
from ..units import show_value as _show

Duration = Annotated[float, BeforeValidator(parse_duration)]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NAME_RULE = "a name starts with a letter or digit; then letters, digits, '_', '.', '-'"
Int = Annotated[int, Strict()]  # TOML is typed: no "5" -> 5 or true -> 1
Float = Annotated[float, Strict()]  # 1 and 1.5, never "1.5" or true
Bool = Annotated[bool, Strict()]  # true / false, never "true" or 1


# ``host``/``port`` of a model whose ``bind`` is "host:port" (port 0: ephemeral), for its class body
bind_host = property(lambda self: split_host_port(self.bind, allow_port_zero=True)[0], doc="bind host (no brackets)")
bind_port = property(lambda self: split_host_port(self.bind, allow_port_zero=True)[1], doc="bind port; 0: ephemeral")


class _Model(BaseModel):
    # (the docstring under each field is its description: config/reference.py reads them from the
    # source for docs/configuration.md; pydantic's use_attribute_docstrings would do it at every
    # import, which doubled the time `steelyard health` and every other command take to start)
    model_config = ConfigDict(frozen=True, extra="forbid")


Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """Invalid configuration. ``errors`` lists every (key path, message) found."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.source}: {path}: {msg}" if path else f"{self.source}: {msg}" for path, msg in self.errors
        )


class _Problems(ValueError):
    """Several errors from one validator, each at a location relative to it."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))


def _check(check: Callable[[str], object]) -> AfterValidator:
    """Run ``check`` (it raises ``ValueError`` with a user-facing message) and keep the text."""

    def validate(text: str) -> str:
        check(text)
        return text

    return AfterValidator(validate)


def _matching(pattern: str, expected: str) -> AfterValidator:
    def check(text: str) -> None:
        if not re.fullmatch(pattern, text):
            raise ValueError(f"{expected}; got {_show(text)}")

    return _check(check)


# --- field types and helpers the section modules share -----------------------------

TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 9110 token: a header or cookie name
Address = Annotated[str, _check(split_host_port)]
Bind = Annotated[str, _check(partial(split_host_port, allow_port_zero=True))]
Name = Annotated[str, _matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*", NAME_RULE)]


def _duplicates(group: str, key: str, values: Iterable[tuple[int, Any]]) -> list[tuple[Loc, str]]:
    """A problem at ``(group, i, key)`` for each text value already seen earlier in ``values``."""
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, value in values:
        if not isinstance(value, str):
            continue  # missing or malformed: reported by field validation
        if value in first:
            problems.append(((group, i, key), f"duplicate {key} {_show(value)} (also {group} #{first[value] + 1})"))
        first.setdefault(value, i)
    return problems


# --- reading and error translation ----------------------------------------------


def read_toml(text_or_dict: str | Mapping[str, Any], source: str, error: type[ConfigError] = ConfigError) -> Any:
    """TOML text -> data (a dict is passed through); ``error`` names the line of a syntax error."""
    if not isinstance(text_or_dict, str):
        return text_or_dict
    try:
        return tomllib.loads(text_or_dict)
    except tomllib.TOMLDecodeError as exc:
        msg, where = str(exc), ""
        if match := re.search(r"\s*\(at (line \d+, column \d+)\)$", msg):
            msg, where = msg[: match.start()], match[1]
        raise error(source, [(where, f"invalid TOML: {msg}")]) from None


def read_file(path: str | Path, error: type[ConfigError] = ConfigError) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise error(str(path), [("", f"cannot read file: {why or exc}")]) from None


def key_path(loc: Loc, data: Any) -> str:
    """``("pool", 0, "servers", 1, "address")`` -> ``pool "app" → servers #2 → address``."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list | tuple) and parts:
            node = node[part] if part < len(node) else None
            name = node.get("name") if isinstance(node, Mapping) else None
            parts[-1] += f" {_show(name)}" if isinstance(name, str) and name else f" #{part + 1}"
        elif isinstance(node, Mapping):
            parts.append(str(part))
            node = node.get(part)
        else:
            break  # pydantic's own tags below a scalar (e.g. "function-after[...]")
    return " → ".join(parts)


def _message(err: Mapping[str, Any], keys_of: Mapping[str, type[BaseModel]]) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        parent = next((p for p in reversed(err["loc"][:-1]) if isinstance(p, str)), "")
        model = keys_of.get(parent, keys_of[""])
        keys = [f.alias or n for n, f in model.model_fields.items()]
        close = difflib.get_close_matches(str(err["loc"][-1]), keys, n=1)
        return "unknown key" + (f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(keys)}")
    if kind == "value_error":
        return str(ctx["error"])
    if kind in ("tuple_type", "list_type"):
        return f"expected an array; got {_show(value) if not isinstance(value, Mapping) else 'a table'}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a table; got {_show(value)}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} entry"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return f"{NAME_RULE}; got {_show(value)}"
    msg = err["msg"][:1].lower() + err["msg"][1:]
    return f"{msg}; got {_show(value)}" if not isinstance(value, Mapping | list) else msg


def translate(exc: ValidationError, data: Any, keys_of: Mapping[str, type[BaseModel]]) -> list[tuple[str, str]]:
    """Every error of ``exc`` as (key path, message); ``keys_of`` maps a table's key to its
    model (``""``: the root), for "did you mean" on unknown keys."""
    errors: list[tuple[str, str]] = []
    for err in exc.errors():
        if err["type"] == "too_short" and len(err["input"]) >= err["ctx"]["min_length"]:
            continue  # pydantic's echo of failed items ("not 0 after validation"), already reported
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _Problems):
            errors += [(key_path((*err["loc"], *loc), data), msg) for loc, msg in cause.problems]
        else:
            errors.append((key_path(err["loc"], data), _message(err, keys_of)))
    return errors
