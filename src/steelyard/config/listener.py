"""Listener hardening keys: sizes, rate limits and TLS (``[listener.tls]``), as frozen models.

Invariants (those of ``config``): frozen models, unknown keys refused, strict types, errors that
name the key path. Sizes are an integer number of bytes or a string with a unit ("64KiB",
"10MB", "1m"; k/m/g are powers of 1024, as in nginx); a size is never zero or negative.
TLS certificate and key files are checked to exist when the config is read, and loaded
(so a wrong pair or a key that does not match is an error naming the key path) when the
listener starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from ..units import show_value as _show
from .base import Float, Int, _Model

_SIZE = re.compile(r"(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?", re.IGNORECASE)
_SIZE_UNIT = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: Any) -> int:
    """``4096`` / ``"64KiB"`` / ``"10MB"`` / ``"1m"`` -> bytes; ``ValueError`` says what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f'expected a size in bytes, or with a unit (KiB, MB, k, m, g), e.g. "10MB"; got {_show(value)}'
            )
        n = int(match[1]) * _SIZE_UNIT[(match[2] or "").lower()]
    if n <= 0:
        raise ValueError(f"a size must be greater than zero; got {_show(value)}")
    return n


Size = Annotated[int, BeforeValidator(parse_size)]


def _existing_file(text: Any) -> Any:
    if isinstance(text, str) and not Path(text).is_file():
        raise ValueError(f"no such file: {_show(text)}")
    return text


FilePath = Annotated[str, BeforeValidator(_existing_file)]


class RateLimitConfig(_Model):
    """A token bucket per client address: ``rate`` requests per second, bursts of ``burst``."""

    rate: Annotated[Float, Field(gt=0)]
    """Requests per second allowed per client address."""
    burst: Annotated[Int, Field(ge=1)] | None = None
    """Default: max(1, rate)."""
    max_clients: Annotated[Int, Field(ge=1)] = 65536
    """Buckets kept (least recently used dropped)."""

    @property
    def bucket_size(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.rate))


class CertificateConfig(_Model):
    """One certificate chain and its key; ``names`` (SNI host names, ``*.suffix`` allowed)
    default to none: then the certificate answers only as the default."""

    cert: FilePath
    """Certificate chain file (PEM)."""
    key: FilePath
    """Private key file (PEM)."""
    names: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """The SNI names this certificate answers (\"*.suffix\" allowed); none: only as the default."""


class TlsConfig(_Model):
    """TLS termination: ``cert``/``key`` is the default certificate; ``certificate`` adds more,
    chosen by the client's SNI name (exact name first, then ``*.suffix``, then the default)."""

    cert: FilePath | None = None
    """Default certificate chain file (PEM)."""
    key: FilePath | None = None
    """Its private key file (PEM)."""
    certificates: tuple[CertificateConfig, ...] = Field(default=(), alias="certificate")
    """More certificates, chosen by the client's SNI name."""
    min_version: Annotated[str, Field(pattern=r"^1\.[23]$")] = "1.2"
    """Lowest TLS version accepted: \"1.2\" or \"1.3\"."""

    @model_validator(mode="after")
    def _has_certificate(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if self.cert is None and not self.certificates:
            raise ValueError("a TLS listener needs cert and key (or [[listener.tls.certificate]] entries)")
        return self
