"""steelyard.control.probe.probe against real sockets: small asyncio servers on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from steelyard.config.pool import HealthConfig
from steelyard.control.probe import MAX_RESPONSE, probe
from steelyard.core.model import Server

BOUND = 10.0  # seconds: every wait in these tests is bounded by this

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Server]:
    """A listening server on 127.0.0.1 running ``handler`` per connection; yields it as a pool ``Server``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield Server("s1", "127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), BOUND)


def answering(*parts: bytes, heads: list[bytes] | None = None, close: bool = True) -> Handler:
    """Read the request head (kept in ``heads``), write ``parts`` one by one, then close (or wait for
    the client to close first when ``close`` is false)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            if heads is not None:
                heads.append(head)
            for part in parts:
                writer.write(part)
                await writer.drain()
            if not close:
                await asyncio.wait_for(reader.read(), BOUND)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


def response(status: str, body: bytes = b"", *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(*chunks: bytes) -> list[bytes]:
    """A chunked 200 response as separate writes: the head, then one chunk per write, then the end."""
    return [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        *(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks),
        b"0\r\n\r\n",
    ]


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, never listened, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(**kw: object) -> HealthConfig:
    return HealthConfig(**{"timeout": "2s", **kw})


def request_headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    line, *rest = head.decode("latin-1").split("\r\n")
    headers = [(name.lower(), value.strip()) for name, _, value in (h.partition(":") for h in rest if h)]
    return line, headers


# --- HTTP status ---------------------------------------------------------------------


async def test_http_200_is_ok() -> None:
    async with serving(answering(response("200 OK", b"ok\n"))) as server:
        assert await probe(server, http()) == (True, "HTTP 200 on /healthz")


async def test_redirect_is_within_the_default_range() -> None:
    async with serving(answering(response("302 Found", b"", "Location: /elsewhere"))) as server:
        assert await probe(server, http()) == (True, "HTTP 302 on /healthz")


async def test_http_500_is_not_ok() -> None:
    async with serving(answering(response("500 Internal Server Error", b"failing\n"))) as server:
        assert await probe(server, http()) == (False, "HTTP 500 on /healthz (expected 200-399)")


async def test_expect_status_list_accepts_204_and_refuses_201() -> None:
    check = http(expect_status="200,204")
    async with serving(answering(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        assert await probe(server, check) == (True, "HTTP 204 on /healthz")
    async with serving(answering(response("201 Created"))) as server:
        assert await probe(server, check) == (False, "HTTP 201 on /healthz (expected 200,204)")


async def test_a_response_kept_open_by_the_server_still_completes() -> None:
    """The server ignores Connection: close: the check ends at the end of the message, not at EOF
    (the server holds the connection open until the client leaves, so waiting for EOF would time out)."""
    for parts in ([response("200 OK", b"ok\n")], chunked(b"o", b"k")):
        async with serving(answering(*parts, close=False)) as server:
            assert await probe(server, http(timeout="5s")) == (True, "HTTP 200 on /healthz")


# --- expect_body ------------------------------------------------------------------------


async def test_expect_body_present() -> None:
    async with serving(answering(response("200 OK", b'{"status": "healthy"}'))) as server:
        assert await probe(server, http(expect_body="healthy")) == (True, "HTTP 200 on /healthz")


async def test_expect_body_absent() -> None:
    async with serving(answering(response("200 OK", b'{"status": "degraded"}'))) as server:
        assert await probe(server, http(expect_body="healthy")) == (
            False,
            "HTTP 200 on /healthz without 'healthy' in the body",
        )


async def test_expect_body_spanning_two_chunks() -> None:
    async with serving(answering(*chunked(b'{"status": "hea', b'lthy"}'))) as server:
        assert await probe(server, http(expect_body="healthy")) == (True, "HTTP 200 on /healthz")
    # the chunk framing itself is not part of the body
    async with serving(answering(*chunked(b"heal", b"thy"))) as server:
        assert await probe(server, http(expect_body="heal\r\n3\r\nthy")) == (
            False,
            "HTTP 200 on /healthz without 'heal\\r\\n3\\r\\nthy' in the body",
        )


async def test_expect_body_in_a_close_delimited_body() -> None:
    parts = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"all ", b"healthy here")
    async with serving(answering(*parts)) as server:
        assert await probe(server, http(expect_body="healthy")) == (True, "HTTP 200 on /healthz")


async def test_a_bad_status_is_reported_before_the_body() -> None:
    async with serving(answering(response("503 Service Unavailable", b"healthy"))) as server:
        assert await probe(server, http(expect_body="healthy")) == (False, "HTTP 503 on /healthz (expected 200-399)")


# --- broken servers ---------------------------------------------------------------------


async def test_connection_refused() -> None:
    server = Server("gone", "127.0.0.1", closed_port())
    assert await probe(server, http()) == (False, "connection refused")


async def test_no_answer_within_the_timeout() -> None:
    hung_up = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(reader.read(), BOUND)  # never answers; waits for the client to leave
        hung_up.set()
        writer.close()

    async with serving(silent) as server:
        assert await probe(server, http(timeout="100ms")) == (False, "no answer within 100ms")
        await asyncio.wait_for(hung_up.wait(), BOUND)  # the probe closed its connection


async def test_a_trickling_response_is_bounded_by_the_timeout() -> None:
    """The timeout covers the whole check, not each read."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(200):  # bounded: at most 200 × 30ms
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.03)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async with serving(trickle) as server:
        assert await probe(server, http(timeout="200ms")) == (False, "no answer within 200ms")


async def test_closed_without_a_response() -> None:
    async with serving(answering()) as server:
        assert await probe(server, http()) == (False, "connection closed without a response to /healthz")
    async with serving(answering(b"HTTP/1.1 200 OK\r\nContent-Le")) as server:  # half a head
        assert await probe(server, http()) == (False, "connection closed without a response to /healthz")


async def test_reset_by_the_server() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: RST

    async with serving(reset) as server:
        ok, why = await probe(server, http())
    assert not ok
    assert "reset" in why.lower()


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
    ],
)
async def test_malformed_response(garbage: bytes) -> None:
    async with serving(answering(garbage)) as server:
        ok, why = await probe(server, http())
    assert not ok
    assert why.startswith("malformed response to /healthz: ")


async def test_a_response_larger_than_64_kib() -> None:
    body = b"x" * (70 * 1024)
    async with serving(answering(response("200 OK", body))) as server:
        assert await probe(server, http()) == (False, "response to /healthz larger than 64 KiB")


async def test_a_response_of_exactly_64_kib_is_read() -> None:
    def sized(total: int) -> bytes:
        head = len(response("200 OK", b"", "Content-Type: text/plain")) + 4  # "0" becomes 5 digits
        data = response("200 OK", b"x" * (total - head), "Content-Type: text/plain")
        assert len(data) == total
        return data

    async with serving(answering(sized(MAX_RESPONSE))) as server:
        assert await probe(server, http()) == (True, "HTTP 200 on /healthz")
    async with serving(answering(sized(MAX_RESPONSE + 1))) as server:
        assert await probe(server, http()) == (False, "response to /healthz larger than 64 KiB")


# --- what is sent ------------------------------------------------------------------------


async def test_the_request_carries_path_host_and_connection_close() -> None:
    heads: list[bytes] = []
    async with serving(answering(response("200 OK", b"ok"), heads=heads)) as server:
        assert await probe(server, http(path="/status/live?full=1")) == (True, "HTTP 200 on /status/live?full=1")
    (head,) = heads
    line, headers = request_headers(head)
    assert line == "GET /status/live?full=1 HTTP/1.1"
    assert [v for k, v in headers if k == "host"] == [f"127.0.0.1:{server.port}"]  # the server's address
    assert [v for k, v in headers if k == "connection"] == ["close"]


async def test_the_host_header_from_config() -> None:
    heads: list[bytes] = []
    async with serving(answering(response("200 OK"), heads=heads)) as server:
        assert (await probe(server, http(host="health.example.test")))[0]
    (head,) = heads
    line, headers = request_headers(head)
    assert line == "GET /healthz HTTP/1.1"
    assert [v for k, v in headers if k == "host"] == ["health.example.test"]
    assert ("connection", "close") in headers


# --- TCP checks ------------------------------------------------------------------------------


async def test_tcp_check_ok_sends_nothing() -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(await asyncio.wait_for(reader.read(), BOUND))  # until the check closes
        writer.close()

    async with serving(record) as server:
        assert await probe(server, HealthConfig(type="tcp", timeout="2s")) == (True, "TCP connect ok")
        assert await asyncio.wait_for(received, BOUND) == b""  # connected, sent nothing, closed


async def test_tcp_check_refused() -> None:
    server = Server("gone", "127.0.0.1", closed_port())
    assert await probe(server, HealthConfig(type="tcp", timeout="2s")) == (False, "connection refused")


async def test_a_101_upgrade_answer_is_a_failed_check_not_an_exception() -> None:
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    async with serving(answering(answer)) as server:
        ok, why = await probe(server, http())
    assert not ok
    assert "101" in why


async def test_a_body_cut_short_of_its_content_length_fails_even_if_it_holds_the_expected_text() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok, 7b"
    async with serving(answering(answer)) as server:
        assert await probe(server, http(expect_body="ok")) == (False, "response to /healthz cut short")
