"""The demo backend's session routes: a plain ASGI app behind ``steelyard.sessions.SessionMiddleware``,
served by uvicorn. ``steelyard backend --sessions memory|redis://HOST:PORT/DB|replicated [--peer HOST:PORT]``
runs it instead of the plain demo server.

Every response carries ``X-Served-By: NAME`` and is JSON (text for /healthz):
  /login?user=NAME   creates a session for NAME (a new id: the cookie changes); {"user", "count": 0}
  /me                the session's user and its counter, incremented atomically; 401 without a session
  /logout            destroys the session and clears the cookie
  /healthz           "ok"
A session store that cannot be reached makes every session route a 503 (the middleware's answer).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import parse_qs

from ..sessions import SessionMiddleware, open_store
from ..sessions.store import Store


class SessionsApp:
    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the middleware starts and stops the store
            await receive()  # startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        session = scope.get("session")
        if path == "/healthz":
            await self._answer(send, 200, b"ok\n", b"text/plain")
            return
        if path == "/login":
            users = parse_qs(scope.get("query_string", b"").decode()).get("user")
            if not users or not users[0]:
                await self._json(send, 400, {"error": "login needs ?user=NAME"})
                return
            await session.create({"user": users[0], "count": 0})
            await self._json(send, 200, {"user": users[0], "count": 0, "server": self.name})
        elif path == "/me":
            data = await session.update(lambda d: {**d, "count": d.get("count", 0) + 1})
            if data is None:
                await self._json(send, 401, {"error": "no session", "server": self.name})
            else:
                await self._json(send, 200, {**data, "server": self.name})
        elif path == "/logout":
            await session.destroy()
            await self._json(send, 200, {"user": None, "server": self.name})
        else:
            await self._json(send, 200, {"server": self.name, "path": path})

    async def _json(self, send: Any, status: int, obj: dict) -> None:
        await self._answer(send, status, json.dumps(obj).encode() + b"\n", b"application/json")

    async def _answer(self, send: Any, status: int, body: bytes, ctype: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", b"%d" % len(body)),
                    (b"x-served-by", self.name.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def make_store(spec: str, name: str, peers: list[tuple[str, int]], replicate_on: tuple[str, int] | None) -> Store:
    if spec == "replicated":
        return open_store(spec, node=name, listen=replicate_on or ("127.0.0.1", 0), peers=tuple(peers))
    return open_store(spec)


async def serve_sessions(
    name: str,
    host: str,
    port: int,
    spec: str,
    peers: list[tuple[str, int]],
    replicate_on: tuple[str, int] | None = None,
) -> None:
    import uvicorn

    store = make_store(spec, name, peers, replicate_on)
    app = SessionMiddleware(SessionsApp(name), store)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()

    async def announce() -> None:
        while not server.started:  # bounded: uvicorn starts or the task is cancelled with it
            await asyncio.sleep(0.01)
        extra = f" (replication on {store.listen[0]}:{store.listen[1]})" if spec == "replicated" else ""
        print(f"backend {name} listening on {host}:{sock.getsockname()[1]} sessions {spec}{extra}", flush=True)

    task = loop.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        task.cancel()


def run_sessions_backend(
    name: str,
    host: str,
    port: int,
    spec: str,
    peers: list[tuple[str, int]],
    replicate_on: tuple[str, int] | None = None,
) -> None:
    asyncio.run(serve_sessions(name, host, port, spec, peers, replicate_on))
