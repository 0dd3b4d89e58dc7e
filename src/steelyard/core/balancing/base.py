"""The picker interface every balancing algorithm implements, and the algorithm registry.

Contract (kept tiny on purpose, after gRPC-Go's pickers):

- A balancer is built from the *usable* servers of one pool snapshot. Health,
  draining and ejection are applied before it ever sees a server; algorithms never
  check health themselves.
- ``pick(ctx, exclude)`` returns one server or ``None`` (only when every server is
  excluded, or there are none). ``exclude`` holds servers already tried for this
  request, so a retry asks ``pick`` again with the failed one excluded.
- The data plane counts in-flight work in ``server.load.active`` itself (+1 when a
  request is sent, -1 when it ends) and then calls ``on_done(server, ok, elapsed)``.
  Algorithms that learn from completions (least_time) override ``on_done``.
- Time comes only from the injected ``clock`` (seconds, monotonic), randomness only
  from the injected ``rng``.

A user's own algorithm is any class with this constructor and these methods, named
in config as ``algorithm = "package.module:ClassName"``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..dotted import load_class
from ..model import Server

if TYPE_CHECKING:
    import random

Clock = Callable[[], float]


class PickContext:
    """What a picker may know about the request it balances."""

    __slots__ = ("client_ip", "key")

    def __init__(self, client_ip: str = "", key: str | None = None) -> None:
        self.client_ip = client_ip  # the downstream peer's address, as text
        self.key = key  # the hash key the pool's ``hash_on`` selected, if any


@dataclass(frozen=True, slots=True)
class BalancerOptions:
    """Pool-level settings an algorithm may read. Unknown algorithms ignore them."""

    hash_on: str = "client_ip"  # client_ip | header:NAME | cookie:NAME | uri
    hash_balance_factor: float | None = None  # bounded-load consistent hashing (e.g. 1.25)
    ewma_decay: float = 10.0  # seconds; least_time's EWMA time constant
    choices: int = 2  # p2c's number of random candidates (d of "the power of d choices")


class Balancer:
    """Base class: holds the servers, the rng and the clock. Subclasses implement ``pick``."""

    #: name used in config and logs; set by each subclass
    name = "base"

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        rng: random.Random,
        clock: Clock,
        options: BalancerOptions = BalancerOptions(),
    ) -> None:
        self.servers: tuple[Server, ...] = tuple(servers)
        self.rng = rng
        self.clock = clock
        self.options = options

    def pick(self, ctx: PickContext, exclude: Collection[Server] = ()) -> Server | None:
        raise NotImplementedError

    def on_done(self, server: Server, ok: bool, elapsed: float) -> None:
        """Called once per finished request after ``server.load.active`` was decremented."""


BUILTIN_ALGORITHMS: dict[str, str] = {
    "round_robin": "steelyard.core.balancing.round_robin:RoundRobin",
    "weighted_round_robin": "steelyard.core.balancing.weighted_round_robin:WeightedRoundRobin",
    "ip_hash": "steelyard.core.balancing.ip_hash:IpHash",
    "consistent_hash": "steelyard.core.balancing.consistent_hash:ConsistentHash",
    "least_conn": "steelyard.core.balancing.least_conn:LeastConn",
    "least_time": "steelyard.core.balancing.least_time:LeastTime",
    "random": "steelyard.core.balancing.random_pick:RandomPick",
    "p2c": "steelyard.core.balancing.p2c:PowerOfTwoChoices",
}


def resolve_algorithm(name: str) -> type[Balancer]:
    """Map an algorithm name (built-in, or ``package.module:ClassName``) to its class.

    Raises ``ValueError`` with a message fit for a user when the name is unknown or
    the class cannot be imported or lacks ``pick``.
    """
    cls = load_class(name, BUILTIN_ALGORITHMS, "algorithm")
    if not isinstance(cls, type) or not callable(getattr(cls, "pick", None)):
        raise ValueError(f"algorithm {name!r} must be a class with a pick(ctx, exclude) method")
    return cls
