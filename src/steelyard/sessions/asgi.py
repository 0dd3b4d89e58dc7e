"""``SessionMiddleware``: server-side sessions for any ASGI app (Starlette, FastAPI, plain ASGI).

The session id travels in a cookie (``cookie_name``, HttpOnly, SameSite=Lax, Path=/); the
data stays in the store. Per HTTP request the middleware:

- loads the session named by the cookie (an unknown or expired id is as good as none) and puts
  a ``Session`` in ``scope["session"]``;
- sets the cookie on the response when the app created a session, clears it when the app
  destroyed one;
- answers ``503`` with a one-line reason when the store is unavailable (``StoreUnavailable``)
  before the app's response started; after that the connection is left to the server.

``Session`` operations go straight to the store (each is atomic, see ``store``):
``create(data)``, ``update(fn)``, ``destroy()``; ``data`` is the data as loaded or last written.
"""

from __future__ import annotations

from typing import Any

from .store import Data, Store, StoreUnavailable, Update

COOKIE = "sessionid"


class Session:
    __slots__ = ("store", "id", "data", "changed")

    def __init__(self, store: Store, sid: str | None, data: Data | None) -> None:
        self.store = store
        self.id = sid if data is not None else None
        self.data: Data = data or {}
        self.changed = False  # the cookie must change (created or destroyed)

    @property
    def exists(self) -> bool:
        return self.id is not None

    async def create(self, data: Data) -> str:
        if self.id is not None:
            await self.store.delete(self.id)  # a new login gets a new id (no session fixation)
        self.id = await self.store.create(data)
        self.data, self.changed = dict(data), True
        return self.id

    async def update(self, fn: Update) -> Data | None:
        if self.id is None:
            return None
        data = await self.store.update(self.id, fn)
        if data is None:
            self.id, self.data = None, {}
        else:
            self.data = data
        return data

    async def destroy(self) -> None:
        if self.id is not None:
            await self.store.delete(self.id)
        self.id, self.data, self.changed = None, {}, True


def read_cookie(header: str, name: str) -> str | None:
    for pair in header.split(";"):
        k, eq, v = pair.strip().partition("=")
        if k == name and eq:
            return v
    return None


def cookie_header(name: str, session: Session, secure: bool = False) -> str:
    tail = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    if session.id is None:
        return f"{name}=; Max-Age=0{tail}"
    return f"{name}={session.id}{tail}"


def unavailable_body(exc: Exception) -> bytes:
    return f"503 session store unavailable: {exc}\n".encode()


class SessionMiddleware:
    def __init__(self, app: Any, store: Store, *, cookie_name: str = COOKIE) -> None:
        self.app, self.store, self.cookie_name = app, store, cookie_name

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = b"; ".join(v for k, v in scope.get("headers", ()) if k == b"cookie").decode("latin-1")
        sid = read_cookie(header, self.cookie_name)
        started = False
        try:
            session = Session(self.store, sid, await self.store.get(sid) if sid else None)
            scope["session"] = session

            async def send_with_cookie(message: dict) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    if session.changed:
                        secure = scope.get("scheme") == "https"
                        cookie = cookie_header(self.cookie_name, session, secure).encode("latin-1")
                        message = {**message, "headers": [*message.get("headers", ()), (b"set-cookie", cookie)]}
                await send(message)

            await self.app(scope, receive, send_with_cookie)
        except StoreUnavailable as exc:
            if started:
                raise
            body = unavailable_body(exc)
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: dict, receive: Any, send: Any) -> None:
        """Start the store with the app (a replicated store catches up here) and stop it after."""
        started = False

        async def receive_wrapped() -> dict:
            nonlocal started
            message = await receive()
            if message["type"] == "lifespan.startup" and not started:
                started = True
                await self.store.start()
            elif message["type"] == "lifespan.shutdown":
                await self.store.stop()
            return message

        try:
            await self.app(scope, receive_wrapped, send)
        except Exception:  # an app without lifespan support: answer the protocol ourselves
            while True:
                message = await receive_wrapped()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
