"""The admin listener: an HTTP + JSON API, Prometheus metrics and an OpenAPI document,
on Starlette served by uvicorn inside the balancer's own event loop (off the data path:
its own socket, its own connections).

Routes (``/api/v1``): ``GET status``, ``GET pools``, ``GET pools/{pool}``,
``POST pools/{pool}/servers``, ``PATCH|DELETE pools/{pool}/servers/{server}``,
``PATCH pools/{pool}``, ``POST reload``, ``GET dns``, ``GET cluster``, ``GET openapi.json``; ``GET /metrics``;
``GET /``: the dashboard (one static page polling the API every second).
Rules:
- Writes need ``Authorization: Bearer TOKEN`` when a token is configured (compared in
  constant time); reads are open on the admin listener (bind it to loopback). Every write
  also passes ``admin_guard`` (same origin, a Host that is no rebound name, a JSON body of
  at most 64 KiB nested at most 32 deep).
- Every error is JSON ``{"error": message, "field": name-or-null}`` with a 4xx status.
"""

from __future__ import annotations

import contextlib
import hmac
import socket
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .admin_guard import Refusal, check_write, read_json
from .changes import ChangeError, RuntimeChanges
from .metrics import metrics_text
from .openapi import OPENAPI

WRITE_METHODS = ("POST", "PATCH", "DELETE", "PUT")
DASHBOARD = (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def refusal_response(refusal: Refusal) -> JSONResponse:
    response = _error(refusal.status, refusal.message)
    if refusal.status == 413:
        response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


class AdminApp:
    def __init__(self, runtime: Any, changes: RuntimeChanges, token: str | None, host: str = "127.0.0.1") -> None:
        self.runtime, self.changes, self.token = runtime, changes, token
        self.host = host  # the address it is bound to (a write's Host may name it)
        self.started = time.time()
        api = "/api/v1"
        self.app = Starlette(
            routes=[
                Route("/", self.dashboard),
                Route(f"{api}/status", self.status),
                Route(f"{api}/pools", self.pools),
                Route(f"{api}/pools/{{pool}}", self.pool, methods=["GET", "PATCH"]),
                Route(f"{api}/pools/{{pool}}/servers", self.add_server, methods=["POST"]),
                Route(f"{api}/pools/{{pool}}/servers/{{server}}", self.server, methods=["GET", "PATCH", "DELETE"]),
                Route(f"{api}/reload", self.reload, methods=["POST"]),
                Route(f"{api}/dns", self.dns),
                Route(f"{api}/cluster", self.cluster),
                Route(f"{api}/workers", self.workers),
                Route(f"{api}/openapi.json", self.openapi),
                Route("/metrics", self.metrics),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            headers = dict(scope["headers"])
            if self.token is not None:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, b"Bearer " + self.token.encode()):
                    response = _error(401, "this admin API needs Authorization: Bearer <token> for changes")
                    response.headers["WWW-Authenticate"] = "Bearer"
                    await response(scope, receive, send)
                    return
            try:
                check_write(headers, self.host, self.token is not None)
            except Refusal as refusal:
                await refusal_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    # -- reads ---------------------------------------------------------------------

    def _pool_summary(self, name: str) -> dict:
        keeper = self.runtime.health[name]
        rows = keeper.status()
        return {
            "name": name,
            "algorithm": keeper.algorithm_name,
            "servers": len(rows),
            "usable": len(keeper.pool.snapshot.servers),
            "panic": keeper.health.panic,
            "queued": self.runtime.queue_depth(name),
        }

    async def _fresh(self) -> None:
        """With workers: their counters first (this process serves no traffic itself)."""
        await self.runtime.refresh_stats()

    async def status(self, request: Request) -> JSONResponse:
        rt = self.runtime
        await self._fresh()
        listeners = [
            {"name": name, "mode": lst.mode, "address": f"{lst.host}:{lst.port}"} for name, lst in rt.listeners.items()
        ]
        servers = [
            {"pool": name, "server": r["server"], "origin": r["origin"], "status": r["status"]}
            for name, keeper in rt.health.items()
            for r in keeper.status()
        ]
        return JSONResponse(
            {
                "uptime_s": round(time.time() - self.started, 3),
                "config": rt.config.source,
                "state_file": str(self.changes.path) if self.changes.path else None,
                "listeners": listeners,
                "pools": [self._pool_summary(p) for p in rt.health],
                "servers": servers,
                "cluster": rt.cluster.status() if rt.cluster is not None else None,
            }
        )

    async def pools(self, request: Request) -> JSONResponse:
        await self._fresh()
        return JSONResponse([self._pool_summary(p) for p in self.runtime.health])

    async def pool(self, request: Request) -> JSONResponse:
        name = request.path_params["pool"]
        if request.method == "PATCH":
            return await self._change(request, lambda body: self.changes.set_algorithm(name, body))
        if name not in self.runtime.health:
            return _error(404, f"no pool named {name!r}", "pool")
        await self._fresh()
        rows = self.runtime.health[name].status()
        return JSONResponse({**self._pool_summary(name), "servers": rows})

    async def server(self, request: Request) -> JSONResponse:
        pool, name = request.path_params["pool"], request.path_params["server"]
        if request.method == "PATCH":
            return await self._change(request, lambda body: self.changes.update_server(pool, name, body))
        if request.method == "DELETE":
            return await self._change(request, lambda _: self.changes.remove_server(pool, name), body=False, status=202)
        try:
            return JSONResponse(self.changes.describe(pool, name))
        except ChangeError as exc:
            return _error(exc.status, exc.message, exc.field)
        except StopIteration:
            return _error(404, f"pool {pool} has no server {name!r}", "server")

    async def dashboard(self, request: Request) -> Response:
        return HTMLResponse(DASHBOARD)

    async def dns(self, request: Request) -> JSONResponse:
        return JSONResponse(
            [
                {
                    "listener": name,
                    "zone": lst.cfg.origin,
                    "address": f"{lst.host}:{lst.port}",
                    "records": lst.service.zone.view(),
                }
                for name, lst in self.runtime.dns.items()
            ]
        )

    async def cluster(self, request: Request) -> JSONResponse:
        """This node's link to the cluster and every live node (age, view of each server); the
        members are read from Redis, so they are missing (``nodes`` null) while it is unreachable."""
        node = self.runtime.cluster
        if node is None:
            return JSONResponse({"enabled": False, "nodes": []})
        try:
            members = await node.members()
        except Exception as exc:  # noqa: BLE001  (Redis down: say so, keep answering)
            members, why = None, str(exc) or type(exc).__name__
        else:
            why = None
        return JSONResponse({"enabled": True, **node.status(), "nodes": members, "error": why})

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def workers(self, request: Request) -> JSONResponse:
        """The worker processes (``workers`` > 1): pid, generation, in-flight count, uptime."""
        hub = self.runtime.hub
        if hub is None:
            return JSONResponse({"workers": 1, "processes": [], "restarts": 0})
        return JSONResponse({"workers": hub.count, "processes": hub.status(), "restarts": hub.restarts})

    async def metrics(self, request: Request) -> Response:
        await self._fresh()
        return Response(metrics_text(self.runtime), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- writes --------------------------------------------------------------------

    async def reload(self, request: Request) -> JSONResponse:
        ok, why = await self.runtime.reload_from_file()
        return JSONResponse({"reloaded": True}) if ok else _error(400, why, "config")

    async def add_server(self, request: Request) -> JSONResponse:
        pool = request.path_params["pool"]
        return await self._change(request, lambda body: self.changes.add_server(pool, body), status=201)

    async def _change(self, request: Request, apply: Any, *, body: bool = True, status: int = 200) -> JSONResponse:
        data = None
        if body:
            try:
                data = await read_json(request.stream())
            except Refusal as refusal:
                return refusal_response(refusal)
            except ClientDisconnect:  # (gone in the middle of its body: nobody reads an answer)
                return _error(400, "the body ended early: the client went away")
        try:
            return JSONResponse(apply(data), status_code=status)
        except ChangeError as exc:
            return _error(exc.status, exc.message, exc.field)


class _Embedded(uvicorn.Server):
    """uvicorn inside the balancer's loop: the balancer, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


class AdminServer:
    def __init__(self, app: AdminApp, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self.server: _Embedded | None = None
        self.task: Any = None

    async def start(self, loop: Any) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_level="warning", http="auto")
        self.server = _Embedded(config)
        self.task = loop.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started and not self.task.done():
            await _tick()
        if self.task.done():
            self.task.result()  # (raises what stopped it)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)
