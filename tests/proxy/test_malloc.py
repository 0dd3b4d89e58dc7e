"""The allocator thresholds a data-plane process sets at start (proxy/malloc.py)."""

from __future__ import annotations

import platform

import pytest

from steelyard.proxy import malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_both_thresholds() -> None:
    assert malloc.tune() is True


def test_without_mallopt_nothing_is_set(monkeypatch) -> None:
    def no_libc(*_a, **_k):
        raise OSError("no C library here")

    monkeypatch.setattr(malloc.ctypes, "CDLL", no_libc)
    assert malloc.tune() is False
