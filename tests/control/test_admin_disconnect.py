"""steelyard.control.admin: a client that goes away in the middle of a write's body is its own
business: nothing is changed, and nothing is logged as an error of the admin API."""

from __future__ import annotations

import asyncio

from steelyard.control.admin import AdminApp


class Changes:
    def __init__(self) -> None:
        self.calls = 0

    def add_server(self, pool: str, body: object) -> dict:
        self.calls += 1
        return {}


def test_a_client_gone_in_the_middle_of_a_body_changes_nothing_and_raises_nothing():
    changes = Changes()
    app = AdminApp(None, changes, None)  # type: ignore[arg-type]
    path = "/api/v1/pools/app/servers"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9000),
    }
    messages = [{"type": "http.request", "body": b'{"addr', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # (uvicorn logs a traceback for whatever this raises)
    assert changes.calls == 0
    assert all(m.get("status", 400) < 500 for m in sent)
