"""The https redirect's Location (steelyard.proxy.http.guard.https_location)."""

from __future__ import annotations

import pytest

from steelyard.proxy.http.guard import https_location


@pytest.mark.parametrize(
    ("host", "port", "location"),
    [
        (b"example.test", 443, b"https://example.test/x"),
        (b"example.test:80", 443, b"https://example.test/x"),
        (b"example.test:8080", 8443, b"https://example.test:8443/x"),
        (b"[2001:db8::1]:8080", 443, b"https://[2001:db8::1]/x"),
        (b"[2001:db8::1]", 4443, b"https://[2001:db8::1]:4443/x"),
    ],
)
def test_https_location_keeps_the_name_and_uses_the_https_port(host: bytes, port: int, location: bytes) -> None:
    assert https_location(host, b"/x", port) == location
