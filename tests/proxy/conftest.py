"""Fixtures the data-plane unit tests share (the fakes themselves are in ``fakes.py``)."""

from __future__ import annotations

import asyncio

import pytest

from steelyard.proxy.http import request

from .fakes import site as make_site


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    asyncio.set_event_loop(lp)
    yield lp
    lp.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def site(loop):
    """(listener, connection pool): one HTTP listener in front of one server whose connection pool
    the test fills; no spare request parsers before or after."""
    listener, cp = make_site(loop)
    request.SPARE.clear()
    yield listener, cp
    request.SPARE.clear()
