"""The configuration: TOML -> a validated, frozen model, one module per section.

- ``model``: the whole file (``Config``), listeners, routes, pools, servers, the checks across
  sections, and the entry points ``load_config`` / ``parse_config``;
- ``base``: what every TOML-backed model shares (the error type, strict field types, pydantic
  error -> key path translation), also used by the simulator's scenario files;
- one module per table: ``listener`` (sizes, rate limits, TLS), ``pool`` (health, outlier),
  ``sticky``, ``admin``, ``dns``, ``cluster``, ``keepalived``;
- about a validated ``Config``: ``summary`` (what ``steelyard check`` prints), ``warnings``
  (keys that do nothing), ``reference`` (docs/configuration.md, generated).

Domain code imports the models and entry points from here; helpers it shares with the
configuration live in the domain (``cluster.sentinel``, ``dns.names``, ``units``).
"""

from ..units import format_duration, split_host_port
from .base import ConfigError, Duration, read_file
from .model import (
    Config,
    HeaderMatch,
    ListenerConfig,
    PoolConfig,
    RouteConfig,
    ServerConfig,
    load_config,
    parse_config,
)

__all__ = [
    "Config",
    "ConfigError",
    "Duration",
    "HeaderMatch",
    "ListenerConfig",
    "PoolConfig",
    "RouteConfig",
    "ServerConfig",
    "format_duration",
    "load_config",
    "parse_config",
    "read_file",
    "split_host_port",
]
