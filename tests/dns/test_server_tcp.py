"""steelyard.dns.server over TCP: a client that sends queries and never reads the answers is
not kept once it has been idle for ``TCP_IDLE`` (its answers waiting in our buffer are dropped:
a close that waits for them to be read would hold the connection for ever)."""

from __future__ import annotations

import asyncio
import socket

from steelyard.dns import server

ANSWER = b"\x00" * 4096  # (what the answer is does not matter: only how many bytes wait)


class Service:
    def respond(self, message: bytes, limit: int | None) -> bytes:
        return ANSWER


def test_an_idle_client_that_reads_nothing_is_let_go(monkeypatch):
    monkeypatch.setattr(server, "TCP_IDLE", 0.2)
    loop = asyncio.new_event_loop()
    lost = asyncio.Event()
    monkeypatch.setattr(server._Tcp, "connection_lost", lambda self, exc: lost.set())

    async def scenario() -> bool:
        srv = await loop.create_server(lambda: server._Tcp(Service(), loop), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.setblocking(False)
        query = b"\x00\x0c" + b"q" * 12
        try:
            for _ in range(2000):  # ~8 MiB of answers asked for, none read
                try:
                    client.send(query * 10)
                except BlockingIOError:
                    break
                await asyncio.sleep(0)
            await asyncio.wait_for(lost.wait(), 5.0)
            return True
        except TimeoutError:
            return False
        finally:
            client.close()
            srv.close()

    try:
        assert loop.run_until_complete(scenario()), "the connection stayed, its answers waiting for ever"
    finally:
        loop.close()
