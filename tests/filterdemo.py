"""Filters the tests load by dotted path (``tests.filterdemo:Name``): in-process through the
configuration, and in `steelyard serve` subprocesses (tests/integration/test_filters.py puts the
repository on their PYTHONPATH)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from steelyard.filters import Context, Filter, Request, Response, ResponseHead


class RequireKey(Filter):
    """403 unless X-Api-Key is ``options["key"]`` (required: a KeyError names it)."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.key = options["key"]

    def request_filter(self, req: Request, ctx: Context) -> Response | None:
        if req.headers.get("X-Api-Key") != self.key:
            return Response(403, {"X-Denied-By": "RequireKey"}, "a key is needed\n")
        return None


class Tag(Filter):
    """Sets request header X-Tag to ``options["value"]``; keeps ``ctx.pool`` as it saw it in ``ctx.vars``."""

    def request_filter(self, req: Request, ctx: Context) -> None:
        req.headers.set("X-Tag", self.options.get("value", "x"))
        ctx.vars["pool"] = ctx.pool


class AddHeader(Filter):
    """Adds response header ``options["name"]`` (default X-Filtered) with the response's status."""

    def response_filter(self, resp: ResponseHead, ctx: Context) -> None:
        resp.headers.add(self.options.get("name", "X-Filtered"), f"{resp.status} via {ctx.server}")


class PrintLog(Filter):
    """Prints one JSON line per exchange to standard output (the test reads the balancer's output)."""

    def logging(self, req: Request, resp: ResponseHead | None, ctx: Context) -> None:
        line = {
            "path": req.path,
            "status": ctx.status,
            "resp": resp.status if resp is not None else None,
            "duration": ctx.duration,
            "server": ctx.server,
            "pool": ctx.pool,
            "vars": ctx.vars,
        }
        print("filter-log " + json.dumps(line), flush=True)
        sys.stdout.flush()


class SlowTag(Filter):
    """An async request_filter: yields to the loop a few times, then sets X-Async."""

    async def request_filter(self, req: Request, ctx: Context) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        req.headers.set("X-Async", "done")


class Explode(Filter):
    """Raises on the path ``options["path"]`` (default /explode)."""

    def request_filter(self, req: Request, ctx: Context) -> None:
        if req.path == self.options.get("path", "/explode"):
            raise RuntimeError("exploded on purpose")


NotAFilter = dict  # (for the check that a class must be a Filter)
