"""Configuration of session persistence: ``[pool.sticky]``.

- ``mode = "cookie"``: the balancer inserts a signed cookie naming (opaquely) the chosen
  server; ``mode = "source"``: a stick table keyed on the client's address.
- ``secret``: the HMAC key of the cookie; without one each balancer start makes a random
  one (cookies then do not survive a restart: set it for several balancers or restarts).
- ``persist``: when the sticky server cannot take the request (down, ejected, removed, full),
  answer 503 rather than move the client (HAProxy without ``redispatch``).
- ``drain_grace``: a draining server keeps its sticky clients this long, then they move.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Bool, Duration, Int, _Model

_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # RFC 6265 cookie-name (an RFC 9110 token)


class StickyConfig(_Model):
    """``[pool.sticky]``: keep a client on the server it first got."""

    mode: Literal["cookie", "source"]
    """cookie: a signed cookie names the server; source: a table keyed on the client's address."""
    cookie: Annotated[str, Field(pattern=_TOKEN, max_length=64)] = "SYID"
    """The cookie's name."""
    secret: Annotated[str, Field(min_length=16)] | None = None
    """The cookie's HMAC key (16+ characters, no white space); default: drawn at each start, so cookies do not survive
    a restart."""
    max_age: Duration | None = None
    """The cookie's lifetime from its issue (also sent as Max-Age)."""
    idle: Duration | None = None
    """A cookie (or table entry) unused this long is stale."""
    persist: Bool = False
    """When the sticky server cannot take the request, answer 503 rather than move the client."""
    drain_grace: Duration = 0.0
    """A draining server keeps its sticky clients this long, then they move."""
    table_size: Annotated[Int, Field(ge=1, le=10_000_000)] = 100_000
    """Entries of the stick table at most (mode source)."""
    expire: Duration = 1800.0
    """A stick table entry unused this long is gone (mode source)."""

    @model_validator(mode="after")
    def _mode_keys(self) -> StickyConfig:
        given = self.model_fields_set
        wrong = {"cookie": ("table_size", "expire"), "source": ("cookie", "secret", "max_age", "idle")}[self.mode]
        bad = [k for k in wrong if k in given]
        if bad:
            raise ValueError(
                f'{", ".join(bad)} only apply to mode = "{"source" if self.mode == "cookie" else "cookie"}"'
            )
        if self.mode == "cookie" and re.search(r"\s", self.secret or ""):
            raise ValueError("secret must not contain white space")
        return self
