"""The admin listener: an HTTP + JSON API, Prometheus metrics and an OpenAPI document,
on Starlette served by uvicorn inside the balancer's own event loop (off the data path:
its own socket, its own connections).

Routes (``/api/v1``): ``GET status``, ``GET pools``, ``GET pools/{pool}``,
``POST pools/{pool}/servers``, ``PATCH|DELETE pools/{pool}/servers/{server}``,
``PATCH pools/{pool}``, ``POST reload``, ``GET dns``, ``GET cluster``, ``GET openapi.json``; ``GET /metrics``;
``GET /``: the dashboard (one static page polling the API every second), which reads
``GET overview``, ``GET history`` (15 minutes kept here), ``GET events`` and ``GET servers``
(one page of a pool's servers, filtered).
Rules:
- Writes need ``Authorization: Bearer TOKEN`` when a token is configured (compared in
  constant time); reads are open on the admin listener (bind it to loopback). Every write
  also passes ``admin_guard`` (same origin, a Host that is no rebound name, a JSON body of
  at most 64 KiB nested at most 32 deep).
- Every error is JSON ``{"error": message, "field": name-or-null}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .admin_guard import Refusal, check_write, read_json
from .changes import ChangeError, RuntimeChanges
from .dashboard import JOURNAL, PAGE_MAX, History, events, overview, server_page
from .metrics import metrics_text
from .openapi import OPENAPI

WRITE_METHODS = ("POST", "PATCH", "DELETE", "PUT")
DASHBOARD = (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def refusal_response(refusal: Refusal) -> JSONResponse:
    response = _error(refusal.status, refusal.message)
    if refusal.status == 413:
        response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | JSONResponse:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        return _error(400, f"{name} must be a whole number from {low} to {high}", name)
    return value


class AdminApp:
    def __init__(self, runtime: Any, changes: RuntimeChanges, token: str | None, host: str = "127.0.0.1") -> None:
        self.runtime, self.changes, self.token = runtime, changes, token
        self.host = host  # the address it is bound to (a write's Host may name it)
        self.started = time.time()
        self.history = History(runtime)
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
                Route(f"{api}/overview", self.overview),
                Route(f"{api}/history", self.history_view),
                Route(f"{api}/events", self.events),
                Route(f"{api}/servers", self.servers),
                Route("/favicon.ico", self.favicon),
                Route("/favicon.svg", self.favicon),
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
        return {
            "name": name,
            "algorithm": keeper.algorithm_name,
            "servers": len(keeper.health.states),
            "usable": len(keeper.pool.snapshot.servers),
            "panic": keeper.health.panic,
            "by_status": dict(Counter(st.status for st in keeper.health.states)),  # up / down / drain / ...
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
            {"pool": name, "server": st.server.name, "origin": st.origin, "status": st.status}
            for name, keeper in rt.health.items()
            for st in keeper.health.states
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
        paging: dict[str, Any] = {}  # a page of the servers: ?offset=N&limit=N&status=WORD (each optional)
        for key in ("offset", "limit"):
            value = request.query_params.get(key)
            if value is not None:
                if not value.isdigit():
                    return _error(400, f"{key} must be a whole number (0 or more), not {value!r}", key)
                paging[key] = int(value)
        if "status" in request.query_params:
            paging["status"] = request.query_params["status"]
        await self._fresh()
        keeper = self.runtime.health[name]
        states = keeper.health.states
        if "status" in paging:  # e.g. ?status=down: only the servers in that state
            states = [st for st in states if st.status == paging["status"]]
        matched = len(states)
        offset = paging.get("offset", 0)
        states = states[offset : offset + paging["limit"]] if "limit" in paging else states[offset:]
        # (a large page is built in a thread, as /metrics is)
        rows = keeper.status(states) if len(states) <= 1000 else await asyncio.to_thread(keeper.status, states)
        body = {**self._pool_summary(name), "servers": rows}
        if paging:
            body["page"] = {"offset": offset, "limit": paging.get("limit"), "matched": matched}
        return JSONResponse(body)

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

    async def favicon(self, request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def overview(self, request: Request) -> JSONResponse:
        """Listeners and pools for the dashboard's cards (counts by status, no server rows)."""
        await self._fresh()
        return JSONResponse(overview(self.runtime, self.started))

    async def history_view(self, request: Request) -> JSONResponse:
        """The last 15 minutes per listener and pool (``?since=T``: only samples after Unix time T)."""
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            return _error(400, "since must be a Unix time in seconds", "since")
        return JSONResponse(self.history.view(since))

    async def events(self, request: Request) -> JSONResponse:
        """Recent state changes, runtime changes and reloads, newest first (``?limit=N``, 1..500)."""
        limit = _int_param(request, "limit", 100, 1, JOURNAL)
        if isinstance(limit, JSONResponse):
            return limit
        return JSONResponse(events(self.runtime.journal, limit))

    async def servers(self, request: Request) -> JSONResponse:
        """One page of a pool's servers: ``?pool=P&offset=0&limit=50&q=TEXT&status=up|down|...``."""
        name = request.query_params.get("pool", "")
        keeper = self.runtime.health.get(name)
        if keeper is None:
            return _error(404, f"no pool named {name!r}", "pool")
        offset = _int_param(request, "offset", 0, 0, 1 << 31)
        limit = _int_param(request, "limit", 50, 1, PAGE_MAX)
        for value in (offset, limit):
            if isinstance(value, JSONResponse):
                return value
        await self._fresh()
        q, status = request.query_params.get("q", ""), request.query_params.get("status", "")
        return JSONResponse(server_page(keeper, offset, limit, q, status))  # type: ignore[arg-type]

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
        # rendered in a thread: ~20 lines per server, seconds for 10,000 servers; the loop keeps
        # serving meanwhile (it gets the GIL back every switch interval, 5 ms)
        text = await asyncio.to_thread(_without_gc, metrics_text, self.runtime)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- writes --------------------------------------------------------------------

    async def reload(self, request: Request) -> JSONResponse:
        """``{"discard_runtime": true}`` or ``{"discard_runtime": ["POOL", ...]}``: drop those
        runtime changes first, so the file alone decides (changes.discard)."""
        try:
            body = await read_json(request.stream())
        except Refusal as refusal:
            return refusal_response(refusal)
        discard = body.get("discard_runtime", False) if isinstance(body, dict) else None
        if not (isinstance(discard, bool) or (isinstance(discard, list) and all(isinstance(p, str) for p in discard))):
            return _error(400, "discard_runtime is true or a list of pool names", "discard_runtime")
        if isinstance(discard, list) and (unknown := [p for p in discard if p not in self.runtime.health]):
            return _error(404, f"no pool named {unknown[0]!r}", "discard_runtime")
        if discard and self.runtime.cluster is not None:
            return _error(409, "with [cluster] runtime changes live in Redis: undo them with ctl", "discard_runtime")
        pools = discard if isinstance(discard, list) else None
        ok, why = await self.runtime.reload_from_file(pools, discard_all=discard is True)
        return JSONResponse({"reloaded": True, "discarded": discard}) if ok else _error(400, why, "config")

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
        self.app.history.start(loop)
        self.task = loop.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started and not self.task.done():
            await _tick()
        if self.task.done():
            self.task.result()  # (raises what stopped it)

    async def stop(self) -> None:
        self.app.history.stop()
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


def _without_gc(render: Any, *args: Any) -> Any:
    """``render(*args)`` with the cyclic collector paused: rendering 10,000 servers' metrics makes
    a few hundred thousand short-lived objects (freed by reference counting), whose allocation
    would trigger full collections that hold the GIL, and so the event loop, for 100 ms and more."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return render(*args)
    finally:
        if collecting:
            gc.enable()


async def _tick() -> None:
    await asyncio.sleep(0.01)
