"""Session persistence through a real `steelyard serve` in front of real demo backends (127.0.0.1 only):
the signed cookie, forged cookies, redispatch when the sticky server dies, and source-address stickiness
for 50 client addresses (127.0.0.x sources)."""

from __future__ import annotations

import http.client
import json

from .conftest import simple_config

SECRET = "0123456789abcdef0123456789abcdef"


def get(conn: http.client.HTTPConnection, cookie: str | None = None) -> tuple[int, str, str | None, dict]:
    headers = {"Cookie": cookie} if cookie else {}
    conn.request("GET", "/", headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, resp.getheader("X-Served-By"), resp.getheader("Set-Cookie"), json.loads(body)


def syid(set_cookie: str) -> str:
    first = set_cookie.split(";")[0]
    name, _, value = first.partition("=")
    assert name == "SYID"
    attrs = [a.strip() for a in set_cookie.split(";")[1:]]
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    return value


def test_cookie_sticks_ignores_forgeries_and_moves_when_the_server_dies(backends, balancer) -> None:
    bs = backends(3)
    lb = balancer(simple_config(bs, extra_pool=f'[pool.sticky]\nmode = "cookie"\nsecret = "{SECRET}"\n'))
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
    status, first, set_cookie, _ = get(conn)
    assert status == 200 and set_cookie is not None
    value = syid(set_cookie)
    assert first not in value  # opaque
    for _ in range(100):
        status, served, again, seen = get(conn, f"a=1; SYID={value}; b=2")
        assert (status, served, again) == (200, first, None)
    # the server never sees the sticky cookie; the others pass
    cookies = [v for k, v in seen["headers"] if k.lower() == "cookie"]
    assert cookies == ["a=1; b=2"]
    # a tampered cookie is ignored and replaced with a valid one
    forged = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    status, _, replaced, _ = get(conn, f"SYID={forged}")
    assert status == 200 and replaced is not None and syid(replaced) != forged
    # a cookie from another secret is no better
    status, _, replaced, _ = get(conn, "SYID=" + "x" * 43)
    assert status == 200 and replaced is not None
    # the sticky server dies: the client moves to another server, gets a new cookie, sees no error
    next(b for b in bs if b.name == first).kill()
    status, moved, new_cookie, _ = get(conn, f"SYID={value}")
    assert status == 200 and moved != first and new_cookie is not None
    new_value = syid(new_cookie)
    for _ in range(20):
        assert get(conn, f"SYID={new_value}")[:3] == (200, moved, None)
    conn.close()


def test_source_address_keeps_each_of_50_clients_on_one_server(backends, balancer) -> None:
    bs = backends(3)
    lb = balancer(simple_config(bs, extra_pool='[pool.sticky]\nmode = "source"\n'))
    seen: dict[str, set[str]] = {}
    for _ in range(3):
        for n in range(2, 52):
            source = f"127.0.0.{n}"
            conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10, source_address=(source, 0))
            status, served, set_cookie, body = get(conn)
            conn.close()
            assert status == 200 and set_cookie is None
            assert body["headers"] and dict((k.lower(), v) for k, v in body["headers"])["x-forwarded-for"] == source
            seen.setdefault(source, set()).add(served)
    assert all(len(s) == 1 for s in seen.values())
    # round robin under the table: the clients are spread, not all on one server
    assert len({next(iter(s)) for s in seen.values()}) == 3
