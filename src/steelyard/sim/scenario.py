"""Simulation scenarios: TOML (or a dict) -> a validated, frozen ``Scenario``.

Invariants (the style of ``steelyard.config``):

- Every model is frozen and forbids unknown keys; every problem is reported at once
  as ``ScenarioError.errors``, a list of (key path, message), the key path naming
  server groups by name (``servers "fast" → speed``).
- Times are plain numbers of simulated seconds (the model has no wall clock; in the
  supermarket model the unit is the mean service time).
- ``load`` is offered load: the arrival rate divided by the total service capacity
  ``Σ concurrency · speed / mean service time``, so 1.0 saturates the servers.
- Algorithm names go through ``resolve_algorithm``, the registry the proxy uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from ..config.base import NAME_PATTERN, ConfigError, Int, _Model, read_file, read_toml, translate
from ..core.balancing import BalancerOptions, resolve_algorithm


class ScenarioError(ConfigError):
    """Invalid scenario. ``errors`` lists every (key path, message) found."""


def _algorithm(name: str) -> str:
    resolve_algorithm(name)  # its ValueError messages are written for users
    return name


Float = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[Float, Field(gt=0)]
NonNegative = Annotated[Float, Field(ge=0)]
Share = Annotated[Float, Field(gt=0, lt=1)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Algorithm = Annotated[str, AfterValidator(_algorithm)]


class ServerGroup(_Model):
    """``count`` identical servers named ``name`` (or ``name-1``, ``name-2`` ... when several)."""

    name: Name
    count: Annotated[Int, Field(ge=1, le=10_000)] = 1
    speed: Positive = 1.0  # service time is divided by this
    concurrency: Annotated[Int, Field(ge=1, le=10_000)] = 1  # requests served at once; the rest wait FIFO
    weight: Annotated[Int, Field(ge=0, le=1000)] = 1  # as in a pool's config
    queue: Annotated[Int, Field(ge=0)] | None = None  # most requests waiting; more are dropped (None: no limit)
    mtbf: Positive | None = None  # mean time between failures (exponential); None: never fails
    mttr: Positive = 10.0  # mean time to repair (exponential)

    def server_names(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(1, self.count + 1)]


class ArrivalSpec(_Model):
    kind: Literal["poisson", "bursty"] = "poisson"
    peak: Annotated[Float, Field(gt=1)] = 4.0  # bursty: rate in a burst ÷ rate between bursts
    burst_share: Share = 0.1  # bursty: fraction of the time in bursts
    burst_length: Positive = 10.0  # bursty: mean length of a burst


class ServiceSpec(_Model):
    kind: Literal["exponential", "lognormal", "bimodal", "constant"] = "exponential"
    mean: Positive = 1.0  # exponential, lognormal, constant
    sigma: Positive = 1.0  # lognormal: σ of the underlying normal
    short: Positive = 0.5  # bimodal: the short job
    long: Positive = 5.0  # bimodal: the long job
    long_share: Share = 0.1  # bimodal: fraction of long jobs

    @model_validator(mode="after")
    def _bimodal_order(self) -> ServiceSpec:
        if self.kind == "bimodal" and not self.long > self.short:
            raise ValueError(f"long ({self.long:g}) must exceed short ({self.short:g})")
        return self


class BalancerSpec(_Model):
    """The balancer nodes and what they know about server load."""

    count: Annotated[Int, Field(ge=1, le=1000)] = 1  # nodes; each arrival goes to one at random
    refresh: NonNegative = 0.0  # load information is a snapshot refreshed this often; 0: always current
    delay: NonNegative = 0.0  # a snapshot is this old when it arrives
    own: bool = True  # between refreshes a node counts its own requests on top of the snapshot
    detect: NonNegative = 0.0  # health checks notice a failed (or returned) server this much later

    @model_validator(mode="after")
    def _delay_needs_refresh(self) -> BalancerSpec:
        if self.delay and not self.refresh:
            raise ValueError("delay needs refresh > 0 (current information has no delay)")
        return self


class Options(_Model):
    """``BalancerOptions`` for every algorithm of the scenario."""

    choices: Annotated[Int, Field(ge=1, le=1000)] = 2
    ewma_decay: Positive = 10.0
    hash_balance_factor: Annotated[Float, Field(gt=1)] | None = None
    hash_on: Literal["client_ip"] = "client_ip"

    def balancer_options(self) -> BalancerOptions:
        return BalancerOptions(
            hash_on=self.hash_on,
            hash_balance_factor=self.hash_balance_factor,
            ewma_decay=self.ewma_decay,
            choices=self.choices,
        )


class Outage(_Model):
    server: str  # a server's name (a group of one, or "name-2")
    at: NonNegative
    duration: Positive


class Scenario(_Model):
    name: Name
    description: str = ""
    algorithms: tuple[Algorithm, ...] = Field(min_length=1)
    load: Positive = 0.7
    sweep: tuple[Positive, ...] = ()  # loads for the response-time-vs-load plot
    requests: Annotated[Int, Field(ge=1)] = 100_000  # measured requests per run
    warmup: Annotated[Int, Field(ge=0)] = 10_000  # requests before those, not measured
    seed: Int = 1
    clients: Annotated[Int, Field(ge=1)] = 1000  # distinct client addresses (hashing algorithms)
    theory: Literal["none", "supermarket", "mm1"] = "none"  # closed form shown next to the results
    options: Options = Options()
    arrivals: ArrivalSpec = ArrivalSpec()
    service: ServiceSpec = ServiceSpec()
    balancers: BalancerSpec = BalancerSpec()
    servers: tuple[ServerGroup, ...] = Field(min_length=1)
    outages: tuple[Outage, ...] = Field(default=(), alias="outage")

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        seen: set[str] = set()
        for group in self.servers:
            for name in group.server_names():
                if name in seen:
                    raise ValueError(f"two servers are named {name!r}")
                seen.add(name)
        for outage in self.outages:
            if outage.server not in seen:
                raise ValueError(f"outage names no server {outage.server!r}; servers are {', '.join(sorted(seen))}")
        return self

    def server_count(self) -> int:
        return sum(g.count for g in self.servers)


# --- errors ---------------------------------------------------------------------

_KEYS = {
    "": Scenario,
    "servers": ServerGroup,
    "arrivals": ArrivalSpec,
    "service": ServiceSpec,
    "balancers": BalancerSpec,
    "options": Options,
    "outage": Outage,
}


def parse_scenario(text_or_dict: str | Mapping[str, Any], source: str = "<string>") -> Scenario:
    """Validate TOML text or a dict; raise ``ScenarioError`` listing every problem."""
    data = read_toml(text_or_dict, source, ScenarioError)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, translate(exc, data, _KEYS)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a TOML scenario file."""
    return parse_scenario(read_file(path, ScenarioError), str(path))
