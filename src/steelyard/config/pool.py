"""Configuration of a pool's availability features: active health checks and outlier ejection.

Both are optional tables of a pool (``[pool.health]``, ``[pool.outlier]``); without them a
pool trusts every server and only retries a failed request elsewhere. Invariants:

- ``expect_status`` is parsed once into inclusive ranges (``HealthConfig.status_ranges``).
- Defaults follow what HAProxy and Envoy users know: rise 2, fall 3, interval 2s (HAProxy);
  5 consecutive gateway failures eject for 30s, growing per ejection (Envoy).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ..units import show_value
from .base import Duration, Float, Int, _Model

_STATUS_LIST = re.compile(r"\s*\d{3}(\s*-\s*\d{3})?\s*(,\s*\d{3}(\s*-\s*\d{3})?\s*)*")


def status_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """``"200-399, 404"`` -> ((200, 399), (404, 404)); ``ValueError`` names what is wrong."""
    if not _STATUS_LIST.fullmatch(text):
        raise ValueError(f'expected status codes or ranges, e.g. "200-399" or "200, 204"; got {show_value(text)}')
    ranges = []
    for item in text.split(","):
        lo, _, hi = item.partition("-")
        low, high = int(lo), int(hi or lo)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"a status range must lie within 100-599 and run low to high; got {item.strip()!r}")
        ranges.append((low, high))
    return tuple(ranges)


def _valid_statuses(text: str) -> str:
    status_ranges(text)
    return text


class HealthConfig(_Model):
    """``[pool.health]``: an active check of every server of the pool, once per balancer."""

    type: Literal["http", "tcp"] = "http"
    """http: a GET whose status (and body) is checked; tcp: a connect."""
    path: Annotated[str, Field(pattern=r"^/\S*$")] = "/healthz"
    """The path the http check requests."""
    host: Annotated[str, Field(min_length=1, pattern=r"^\S+$")] | None = None
    """The Host header of the check; default: the server's address."""
    expect_status: Annotated[str, AfterValidator(_valid_statuses)] = "200-399"
    """Statuses that pass: codes and ranges, \"200-399\" or \"200, 204\"."""
    expect_body: Annotated[str, Field(min_length=1)] | None = None
    """A substring the response body must contain."""
    interval: Duration = 2.0
    """Time between checks of a healthy server."""
    fail_interval: Duration | None = None
    """Time between checks while a server is failing or down; default: interval / 2."""
    timeout: Duration = 1.0
    """A check gets no answer within this: it fails."""
    rise: Annotated[Int, Field(ge=1, le=100)] = 2
    """Consecutive passes that bring a server back."""
    fall: Annotated[Int, Field(ge=1, le=100)] = 3
    """Consecutive failures that take a server down."""
    jitter: Annotated[Float, Field(ge=0.0, le=0.5)] = 0.1
    """Each wait varies by up to ± this fraction."""

    @model_validator(mode="after")
    def _tcp_has_no_http_keys(self) -> HealthConfig:
        if self.type == "tcp":
            given = [k for k in ("host", "expect_body") if getattr(self, k) is not None]
            given += [k for k in ("path", "expect_status") if k in self.model_fields_set]
            if given:
                raise ValueError(f'{", ".join(given)} only apply to type = "http" checks')
        return self

    @property
    def status_ranges(self) -> tuple[tuple[int, int], ...]:
        return status_ranges(self.expect_status)

    @property
    def failing_interval(self) -> float:
        return self.fail_interval if self.fail_interval is not None else self.interval / 2


class OutlierConfig(_Model):
    """``[pool.outlier]``: passive health. Consecutive failures seen on real traffic eject a server."""

    consecutive_failures: Annotated[Int, Field(ge=0)] = 5
    """Connect failures, resets and timeouts in a row that eject a server; 0: off."""
    consecutive_5xx: Annotated[Int, Field(ge=0)] = 0
    """When > 0: this many 5xx responses in a row eject a server too."""
    base_ejection: Duration = 30.0
    """The first ejection's length; the n-th lasts n times as long."""
    max_ejection: Duration = 300.0
    """The longest ejection."""
    max_ejection_percent: Annotated[Int, Field(ge=0, le=100)] = 50
    """At most this percent of the pool is ejected at once (one server may always go)."""

    @model_validator(mode="after")
    def _ordered(self) -> OutlierConfig:
        if self.max_ejection < self.base_ejection:
            raise ValueError("max_ejection must not be shorter than base_ejection")
        return self
