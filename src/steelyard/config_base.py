"""Building blocks every configuration model shares (``config`` and ``config_pool`` use them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict

from .units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]
Int = Annotated[int, Strict()]  # TOML is typed: no "5" -> 5 or true -> 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
