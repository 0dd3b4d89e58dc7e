"""A real redis-server for the tests, on a free 127.0.0.1 port, without persistence.

The port is chosen by binding a socket to port 0 and closing it (``--port 0`` means "no TCP"
to Redis); readiness is the server's own "Ready to accept connections" line (an event), then
one PING, bounded in time."""

from __future__ import annotations

import shutil
import socket

import pytest
import redis

from .conftest import Proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer(Proc):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "notice",
            ],
            r"Ready to accept connections",
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)
        assert client.ping()
        client.close()
        self.url = f"redis://127.0.0.1:{self.port}/0"


def need_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
