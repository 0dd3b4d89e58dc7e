"""Building blocks every configuration model shares (``config`` and ``config_pool`` use them):
the error type, field types with user-facing messages, and the frozen base model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict

from .units import parse_duration
from .units import show_value as _show

Duration = Annotated[float, BeforeValidator(parse_duration)]
Int = Annotated[int, Strict()]  # TOML is typed: no "5" -> 5 or true -> 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """Invalid configuration. ``errors`` lists every (key path, message) found."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{self.source}: {path}: {msg}" if path else f"{self.source}: {msg}"
                         for path, msg in self.errors)


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
