"""Fixtures the data-plane unit tests share (the fakes themselves are in ``fakes.py``; the
scripting harness in ``script.py``)."""

from __future__ import annotations

import asyncio

import pytest

from steelyard.proxy.http.request import SPARE

from .fakes import site as make_site
from .filtersite import Site
from .script import Script


def pytest_configure(config):
    config.addinivalue_line("markers", "script(**options): options of the `script` fixture (see script.Script)")


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
    SPARE.clear()
    yield listener, cp
    SPARE.clear()


@pytest.fixture
def script(request):
    """A ``script.Script``: a listener in front of fake servers, driven by verbs; its options
    come from the test's ``@pytest.mark.script(...)`` (one server, round robin, no retries by
    default). No spare request parsers before or after."""
    marker = request.node.get_closest_marker("script")
    SPARE.clear()
    yield Script(**(marker.kwargs if marker is not None else {}))
    SPARE.clear()


@pytest.fixture
def filter_site(loop):
    """``filter_site(servers=1, retries=0, max_conns=0)``: a ``filtersite.Site`` (two pools behind
    one listener, for the filter phases); no spare request parsers around it."""
    SPARE.clear()
    yield lambda **kw: Site(loop, **kw)
    SPARE.clear()
