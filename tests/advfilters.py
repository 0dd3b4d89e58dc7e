"""Misbehaving filters for the adversarial integration tests (tests/integration/test_filters_adversarial.py),
loaded by `steelyard serve` by dotted path (``tests.advfilters:Name``). What each request meets is
chosen by its path, so one balancer serves every case."""

from __future__ import annotations

import asyncio
from typing import Any

from steelyard.filters import Context, Filter, Request, Response, ResponseHead


async def _forever() -> None:
    await asyncio.Event().wait()


class Adversary(Filter):
    """request_filter: does what the request's path names (the path, up to a second "/")."""

    def request_filter(self, req: Request, ctx: Context) -> Any:
        path = req.path
        ctx.vars["path"] = path
        h = req.headers
        if path == "/crlf":
            h.set("X-A", "a\r\nX-Injected: 1")
        elif path == "/lf":
            h.set("X-A", "a\nX-Injected: 1")
        elif path == "/nul":
            h.set("X-A", "a\x00b")
        elif path == "/nonlatin":
            h.set("X-A", "caf\u00e9 \u20ac")
        elif path == "/spacename":
            h.set("Bad Name", "x")
        elif path == "/colonname":
            h.set("X:Injected", "x")
        elif path == "/cl":
            h.set("Content-Length", "0")
        elif path == "/te":
            h.set("Transfer-Encoding", "chunked")
        elif path == "/xfp":
            h.set("X-Forwarded-Proto", "https")
        elif path == "/nohost":
            h.remove("Host")
        elif path == "/twohosts":
            h.add("Host", "evil.example")
        elif path == "/xff":
            h.set("X-Forwarded-For", "192.0.2.1")
        elif path == "/many":
            for i in range(int(self.options.get("many", 5000))):
                h.add(f"X-Many-{i}", "v" * 20)
        elif path == "/path-noslash":
            req.path = "noslash"
        elif path == "/path-space":
            req.path = "/a b HTTP/1.1\r\nX: y"
        elif path == "/path-absolute":
            req.path = "http://evil.example/x"
        elif path == "/path-latin1":
            req.path = "/caf\u00e9"
        elif path == "/query-space":
            req.query = "a=b c"
        elif path == "/pool-unknown":
            ctx.pool = "nope"
        elif path == "/status-1xx":
            return Response(100)
        elif path == "/status-999":
            return Response(999)
        elif path == "/status-0":
            return Response(0)
        elif path == "/204-body":
            return Response(204, body="x")
        elif path == "/body-int":
            return Response(200, body=3)  # type: ignore[arg-type]
        elif path == "/body-list":
            return Response(200, body=[104, 105])  # type: ignore[arg-type]
        elif path == "/body-none":
            return Response(200, body=None)  # type: ignore[arg-type]
        elif path == "/mutated-status":
            r = Response(200, body="x")
            r.status = 101
            return r
        elif path == "/mutated-body":
            r = Response(200)
            r.body = "text"  # type: ignore[assignment]
            return r
        elif path == "/mutated-headers":
            r = Response(200)
            r.headers = {"X-A": "b"}  # type: ignore[assignment]
            return r
        elif path == "/returns-int":
            return 42
        elif path == "/hang":
            return _forever()
        elif path == "/cancelled":
            raise asyncio.CancelledError()
        elif path == "/slow":
            return self._slow(h)
        elif path == "/late-raise":
            return self._late_raise()
        return None

    async def _slow(self, h: Any) -> None:
        await asyncio.sleep(float(self.options.get("slow", 0.3)))
        h.set("X-Slow", "done")

    async def _late_raise(self) -> None:
        await asyncio.sleep(float(self.options.get("slow", 0.3)))
        raise RuntimeError("raised after a while")


class RespAdversary(Filter):
    """response_filter: does what the request's path (kept by ``Adversary`` in ctx.vars) names."""

    def response_filter(self, resp: ResponseHead, ctx: Context) -> Any:
        path = ctx.vars.get("path", "")
        if path == "/r-crlf":
            resp.headers.set("X-R", "a\r\nX-Injected: 1")
        elif path == "/r-cl":
            resp.headers.set("Content-Length", "1")
        elif path == "/r-status":
            resp.status = 302
        elif path.startswith("/r-slow"):
            return self._slow(resp)
        elif path == "/r-hang":
            return _forever()
        elif path == "/r-late-raise":
            return self._late_raise()
        return None

    def upstream_request_filter(self, req: Request, ctx: Context) -> Any:
        path = ctx.vars.get("path", "")
        if path.startswith("/u-slow"):
            return self._upstream_slow(req)
        if path == "/u-hang":
            return _forever()
        return None

    async def _upstream_slow(self, req: Request) -> None:
        await asyncio.sleep(float(self.options.get("slow", 0.3)))
        req.headers.set("X-Upstream-Slow", "done")

    async def _slow(self, resp: ResponseHead) -> None:
        await asyncio.sleep(float(self.options.get("slow", 0.3)))
        resp.headers.set("X-Slow", "done")

    async def _late_raise(self) -> None:
        await asyncio.sleep(float(self.options.get("slow", 0.3)))
        raise RuntimeError("raised after a while")


class LogRaises(Filter):
    """logging raises on every exchange."""

    def logging(self, req: Request, resp: ResponseHead | None, ctx: Context) -> None:
        raise RuntimeError("logging broke")


class InitRaises(Filter):
    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        raise RuntimeError("init refused")


class WantsInt(Filter):
    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        if not isinstance(options.get("n"), int):
            raise TypeError(f"option 'n' must be an integer; got {options.get('n')!r}")


class Exits(Filter):
    """request_filter on /exit raises SystemExit (a filter calling sys.exit()); /aexit does it in a coroutine."""

    def request_filter(self, req: Request, ctx: Context) -> Any:
        if req.path == "/exit":
            raise SystemExit(3)
        if req.path == "/aexit":
            return self._exit()
        return None

    async def _exit(self) -> None:
        await asyncio.sleep(0)
        raise SystemExit(4)
