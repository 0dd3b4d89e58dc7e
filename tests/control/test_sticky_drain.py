"""Drain handoff for sticky clients, through an in-process Runtime in front of demo backends: a draining
server keeps the clients whose cookie names it for drain_grace (new clients go elsewhere); when the grace
ends they move, with a new cookie, and the keeper stops publishing it as draining."""

from __future__ import annotations

import asyncio

from test_health_keeper import BOUND, backends, lb_port, pool_config, running, server, until  # noqa: F401


async def get(port: int, cookie: str = "") -> tuple[int, str, str]:
    """One request on a fresh connection; (status, X-Served-By, the SYID value it set or "")."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), BOUND)
    try:
        extra = f"Cookie: SYID={cookie}\r\n" if cookie else ""
        writer.write(f"GET / HTTP/1.1\r\nHost: example.test\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        status, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
        await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), BOUND)
        set_cookie = headers.get("set-cookie", "")
        value = set_cookie.split(";")[0].partition("=")[2] if set_cookie.startswith("SYID=") else ""
        return int(status.split()[1]), headers.get("x-served-by", ""), value
    finally:
        writer.close()


async def test_draining_server_keeps_sticky_clients_for_the_grace_then_they_move(backends) -> None:  # noqa: F811
    config = pool_config(
        server("a", backends["a"]) + server("b", backends["b"]),
        '[pool.sticky]\nmode = "cookie"\ndrain_grace = "300ms"\n',
    )
    async with running(config) as rt:
        port = lb_port(rt)
        status, holder, cookie = await get(port)
        assert status == 200 and cookie
        other = "b" if holder == "a" else "a"
        rt.health["app"].set_state(holder, "drain")
        pool = rt.pools["app"]
        assert holder in pool.draining
        for _ in range(5):
            assert await get(port, cookie) == (200, holder, "")  # still there, no new cookie
            assert (await get(port))[1] == other  # new clients never get the draining server
        await until(lambda: not pool.draining, "the drain grace ends")
        status, served, new_cookie = await get(port, cookie)
        assert (status, served) == (200, other) and new_cookie and new_cookie != cookie
        assert await get(port, new_cookie) == (200, other, "")
