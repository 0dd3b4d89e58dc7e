"""steelyard.sessions against a real redis-server: shared sessions across two app servers (Starlette,
in process, each with its own RedisStore), TTL, atomic updates, a clear 503 while Redis is down and
recovery once it is back; the WSGI middleware under Flask; the memory store's expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from steelyard.sessions import MemoryStore, SessionMiddleware, WsgiSessionMiddleware
from steelyard.sessions.redis_store import PREFIX, RedisStore

from .redisproc import RedisServer, need_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    need_redis()
    server = RedisServer()
    yield server
    server.kill()


def starlette_app(name: str, store) -> SessionMiddleware:
    async def login(request):
        await request.scope["session"].create({"user": request.query_params["user"], "count": 0})
        return JSONResponse({"server": name})

    async def me(request):
        data = await request.scope["session"].update(lambda d: {**d, "count": d["count"] + 1})
        return JSONResponse({"server": name, **(data or {})}, status_code=200 if data else 401)

    app = Starlette(routes=[Route("/login", login), Route("/me", me)])
    return SessionMiddleware(app, store)


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def test_a_session_made_on_a_is_read_on_b_with_ttl_and_atomic_counts(redis_server) -> None:
    store_a, store_b = RedisStore(redis_server.url, ttl=120), RedisStore(redis_server.url, ttl=120)
    a, b = client(starlette_app("A", store_a)), client(starlette_app("B", store_b))
    try:
        r = await a.get("/login", params={"user": "ann"})
        sid = r.cookies["sessionid"]
        assert "HttpOnly" in r.headers["set-cookie"]
        r = await b.get("/me", headers={"Cookie": "sessionid=" + sid})
        assert r.json() == {"server": "B", "user": "ann", "count": 1}
        ttl = await store_a.client.ttl(PREFIX + sid)
        assert 0 < ttl <= 120
        # 20 concurrent increments through both servers: none lost
        results = await asyncio.gather(*(c.get("/me", headers={"Cookie": "sessionid=" + sid}) for c in [a, b] * 10))
        assert sorted(r.json()["count"] for r in results) == list(range(2, 22))
        assert (await b.get("/me", headers={"Cookie": "sessionid=" + "forged"})).status_code == 401
    finally:
        for c, s in ((a, store_a), (b, store_b)):
            await c.aclose()
            await s.stop()


async def test_ttl_expiry_in_redis(redis_server) -> None:
    store = RedisStore(redis_server.url, ttl=1)
    try:
        sid = await store.create({"x": 1})
        assert await store.client.ttl(PREFIX + sid) == 1  # Redis expires it: its own clock, not a sleep here
        await store.client.pexpireat(PREFIX + sid, 1)  # the moment the TTL runs out, brought forward
        assert await store.get(sid) is None
        assert await store.update(sid, lambda d: d) is None
    finally:
        await store.stop()


async def test_redis_down_is_a_clear_503_and_it_recovers(redis_server) -> None:
    store = RedisStore(redis_server.url, ttl=60, timeout=1.0)
    app = client(starlette_app("A", store))
    try:
        assert (await app.get("/login", params={"user": "ann"})).status_code == 200
        port = redis_server.port
        redis_server.kill()
        r = await asyncio.wait_for(app.get("/login", params={"user": "bob"}), 10)
        assert r.status_code == 503 and "session store redis" in r.text and "unreachable" in r.text
        r = await asyncio.wait_for(app.get("/me", headers={"Cookie": "sessionid=" + "x" * 32}), 10)
        assert r.status_code == 503
        again = RedisServer(port)
        try:
            r = await app.get("/login", params={"user": "bob"})
            assert r.status_code == 200
            assert (await app.get("/me", headers={"Cookie": "sessionid=" + r.cookies["sessionid"]})).json()[
                "count"
            ] == 1
        finally:
            again.kill()
    finally:
        await app.aclose()
        await store.stop()


def test_wsgi_middleware_under_flask(redis_server) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("t")

    @app.route("/login")
    def login():
        flask.request.environ["steelyard.session"].create({"user": flask.request.args["user"], "count": 0})
        return {"ok": True}

    @app.route("/me")
    def me():
        data = flask.request.environ["steelyard.session"].update(lambda d: {**d, "count": d["count"] + 1})
        return (data, 200) if data else ({"error": "no session"}, 401)

    @app.route("/logout")
    def logout():
        flask.request.environ["steelyard.session"].destroy()
        return {"ok": True}

    mw = WsgiSessionMiddleware(app.wsgi_app, RedisStore(redis_server.url, ttl=60))
    app.wsgi_app = mw
    try:
        c = app.test_client()
        r = c.get("/login?user=ann")
        assert "sessionid=" in r.headers["Set-Cookie"]
        assert c.get("/me").json == {"user": "ann", "count": 1}
        assert c.get("/me").json["count"] == 2
        r = c.get("/logout")
        assert "Max-Age=0" in r.headers["Set-Cookie"]
        assert c.get("/me").status_code == 401
    finally:
        mw.bridge.close()


async def test_memory_store_expiry_on_a_fake_clock() -> None:
    now = [0.0]
    store = MemoryStore(ttl=10, max_sessions=2, clock=lambda: now[0])
    sid = await store.create({"a": 1})
    now[0] = 9
    assert await store.update(sid, lambda d: {"a": 2}) == {"a": 2}  # a write restarts the TTL
    now[0] = 18
    assert await store.get(sid) == {"a": 2}
    now[0] = 20
    assert await store.get(sid) is None
    ids = [await store.create({"n": i}) for i in range(3)]
    assert await store.get(ids[0]) is None and await store.get(ids[2]) == {"n": 2}
