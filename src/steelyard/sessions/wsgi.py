"""``WsgiSessionMiddleware``: the same server-side sessions for WSGI apps (Flask, plain WSGI).

The stores are async; a WSGI server calls apps from its own threads. ``Bridge`` runs one event
loop in a daemon thread and every store call on it (``run_coroutine_threadsafe``), each waited
for at most ``timeout`` seconds, so a store that hangs becomes ``StoreUnavailable`` (503) too.
The store lives on that loop only (a redis.asyncio client is bound to the loop it first used).

In the app: ``environ["steelyard.session"]`` is a ``SyncSession`` with ``id``, ``data``,
``exists``, ``create(data)``, ``update(fn)`` and ``destroy()`` (blocking versions of ``Session``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

from .asgi import COOKIE, Session, cookie_header, read_cookie, unavailable_body
from .store import Data, Store, StoreUnavailable, Update


class Bridge:
    def __init__(self, store: Store, timeout: float = 5.0) -> None:
        self.store, self.timeout = store, timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="steelyard-sessions", daemon=True)
        self.thread.start()
        self.run(store.start())

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StoreUnavailable(f"the session store did not answer within {self.timeout:g}s") from None

    def close(self) -> None:
        try:
            self.run(self.store.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(self.timeout)


class SyncSession:
    def __init__(self, bridge: Bridge, session: Session) -> None:
        self._bridge, self._session = bridge, session

    id = property(lambda self: self._session.id)
    data = property(lambda self: self._session.data)
    exists = property(lambda self: self._session.exists)

    def create(self, data: Data) -> str:
        return self._bridge.run(self._session.create(data))

    def update(self, fn: Update) -> Data | None:
        return self._bridge.run(self._session.update(fn))

    def destroy(self) -> None:
        self._bridge.run(self._session.destroy())


class WsgiSessionMiddleware:
    def __init__(self, app: Any, store: Store, *, cookie_name: str = COOKIE, timeout: float = 5.0) -> None:
        self.app, self.cookie_name = app, cookie_name
        self.bridge = Bridge(store, timeout)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        sid = read_cookie(environ.get("HTTP_COOKIE", ""), self.cookie_name)
        store = self.bridge.store
        try:
            session = Session(store, sid, self.bridge.run(store.get(sid)) if sid else None)
            environ["steelyard.session"] = SyncSession(self.bridge, session)

            def start_with_cookie(status: str, headers: list, exc_info: Any = None) -> Any:
                if session.changed:
                    secure = environ.get("wsgi.url_scheme") == "https"
                    headers = [*headers, ("Set-Cookie", cookie_header(self.cookie_name, session, secure))]
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            return self.app(environ, start_with_cookie)
        except StoreUnavailable as exc:
            body = unavailable_body(exc)
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
            )
            return [body]
