"""Domain names as the ``[[dns]]`` configuration writes them: relative to the zone, absolute, or
``@`` for the zone itself. Used to check records (config/dns.py) and to build answers (zone.py)."""

from __future__ import annotations


def absolute(name: str, zone: str) -> str:
    """``app`` -> ``app.example.test.``; ``@`` -> the zone; absolute names stay (lower-cased)."""
    if name == "@":
        return zone
    return name.lower() if name.endswith(".") else f"{name.lower()}.{zone}"
