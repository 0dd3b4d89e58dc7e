"""``[admin]``: the admin listener (HTTP + JSON API, metrics, dashboard) and where runtime
changes are kept. Without the table there is no admin listener.

Invariants:
- A non-loopback ``bind`` needs a token: the admin API changes what the balancer serves.
- ``token`` and ``token_file`` exclude each other; a token is at least 16 characters.
- ``state_file`` defaults to the configuration file's path with ``.state.json`` appended
  (see ``Config.state_path``); a config given as text has no default (nothing is kept).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ..units import split_host_port
from .base import _Model, bind_host, bind_port

DEFAULT_ADMIN = "127.0.0.1:9901"


def _admin_bind(text: str) -> str:
    split_host_port(text, allow_port_zero=True)
    return text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminConfig(_Model):
    bind: Annotated[str, AfterValidator(_admin_bind)] = DEFAULT_ADMIN
    """The admin listener's address; one that is not loopback needs a token."""
    token: Annotated[str, Field(min_length=16)] | None = None
    """Changes through the admin API need Authorization: Bearer TOKEN."""
    token_file: Annotated[str, Field(min_length=1)] | None = None
    """Read the token from this file instead (at least 16 characters)."""
    state_file: Annotated[str, Field(min_length=1)] | None = None
    """Where runtime changes are kept; default: the config file's path + \".state.json\"."""

    @model_validator(mode="after")
    def _safe(self) -> AdminConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        host = split_host_port(self.bind, allow_port_zero=True)[0]
        if not is_loopback(host) and self.token is None and self.token_file is None:
            raise ValueError(
                f"the admin listener on {self.bind} is reachable from other hosts: "
                "set token (or token_file), or bind it to 127.0.0.1"
            )
        return self

    host, port = bind_host, bind_port

    def read_token(self) -> str | None:
        """The token (from ``token_file`` when given, stripped of surrounding whitespace)."""
        if self.token_file is None:
            return self.token
        with open(self.token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
        if len(token) < 16:
            raise ValueError(f"the token in {self.token_file} is shorter than 16 characters")
        return token
