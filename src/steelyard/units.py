"""Durations and addresses as users write them (config files, command-line flags).

- A duration is a string with a unit: "150ms", "2s", "1.5m", "1h", "1d" (as HAProxy and
  nginx take them); bare numbers are
  rejected so "30" is never silently milliseconds or seconds.
- An address is "host:port" or "[v6]:port".
Every ``ValueError`` raised here quotes the value as the user wrote it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any


def show_value(value: Any) -> str:
    """A value as the user wrote it in TOML."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """``"150ms"`` / ``"2s"`` / ``"1.5m"`` / ``"1h"`` / ``"1d"`` -> seconds; ``ValueError`` says what is wrong."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a duration with a unit (ms, s, m, h, d), e.g. "2s"; got {show_value(value)}')
    seconds = float(match[1]) * _UNIT[match[2]]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"a duration must be greater than zero; got {show_value(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Inverse of the duration syntax, for display: 0.15 -> "150ms", 120 -> "2m", 7200 -> "2h"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def host_ok(host: str) -> bool:
    """An IP address, or a DNS name that a resolver accepts (RFC 1123 labels; '_' allowed, as
    container platforms use it)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def split_host_port(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port); ``ValueError`` says what is wrong."""
    example = '"127.0.0.1:8080" or "[::1]:8080"'
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not host:
            raise ValueError(f'expected [ipv6]:port, e.g. "[::1]:8080"; got {show_value(text)}')
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port, e.g. {example}; got {show_value(text)}")
        if ":" in host:
            raise ValueError(f'an IPv6 address needs brackets, e.g. "[::1]:8080"; got {show_value(text)}')
    if "".join(host.split()) != host:  # (any whitespace; a C loop: 10,000 servers are parsed at start)
        raise ValueError(f"the host must not contain spaces; got {show_value(text)}")
    if not host_ok(host):
        raise ValueError(
            "the host must be an IP address or a DNS name (labels of letters, digits, '-' or '_', "
            f"at most 63 characters each, 253 in all); got {show_value(text)}"
        )
    low = 0 if allow_port_zero else 1
    if not (port_text.isascii() and port_text.isdigit()) or not low <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from {low} to 65535; got {show_value(text)}")
    return host, int(port_text)
