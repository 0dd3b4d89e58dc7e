"""The demo backend on real sockets (127.0.0.1, ephemeral ports), under both asyncio and uvloop.

Every scenario is a coroutine run by the ``run`` fixture, which starts a backend, passes it in, stops it, and
bounds the whole scenario by a timeout. Waiting is always for an event (a response, EOF, a flag) with a
bound, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import sys
import time
import tracemalloc

import httpx
import pytest
import uvloop

from steelyard.demo import backend as backend_mod
from steelyard.demo.backend import expected_bytes_sha256, start_backend, stop_backend
from steelyard.demo.wire import PATTERN, SEED

SCENARIO_TIMEOUT = 60.0
MiB = 1 << 20


class Conn:
    """A raw HTTP/1.1 client connection with a tiny, strict response reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @property
    def local(self) -> str:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, head_only: bool = False, sink=None):
        """(status, headers as lower-case dict, header list, body). ``sink`` receives the body instead."""
        status_line = await self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        code = int(status_line.split()[1])
        pairs = []
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            pairs.append((name, value.strip()))
        headers = {n.lower(): v for n, v in pairs}
        parts = []
        put = sink or parts.append
        if head_only or code in (204, 304) or code < 200:
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    assert await self.reader.readline() == b"\r\n"
                    break
                await self._copy(size, put)
                assert await self.reader.readexactly(2) == b"\r\n"
        elif "content-length" in headers:
            await self._copy(int(headers["content-length"]), put)
        else:
            put(await self.reader.read())
        return code, headers, pairs, b"".join(parts)

    async def _copy(self, n: int, put) -> None:
        while n:
            data = await self.reader.read(min(n, 1 << 18))
            if not data:
                raise EOFError(f"{n} body bytes missing")
            put(data)
            n -= len(data)

    async def at_eof(self) -> bool:
        """True when the server closed the connection (reads past any leftover bytes)."""
        return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


class Backend:
    def __init__(self, server: asyncio.Server, name: str) -> None:
        self.server, self.name = server, name
        self.port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def connect(self) -> Conn:
        return Conn(*await asyncio.open_connection("127.0.0.1", self.port))

    def connections(self):
        return list(backend_mod._SERVERS[self.server].conns)


def req(method: str, target: str, *headers: str, body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: t", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def eventually(predicate, what: str, attempts: int = 2000) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never became true: {what}")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def go(scenario, name: str = "b1", delay: float = 0.0, **kw):
        async def main():
            server = await start_backend(name, "127.0.0.1", 0, delay, **kw)
            try:
                await asyncio.wait_for(scenario(Backend(server, name)), SCENARIO_TIMEOUT)
            finally:
                await stop_backend(server)

        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())

    return go


# ---- default route ---------------------------------------------------------------------------------


def test_echo_describes_the_request(run):
    async def scenario(b: Backend):
        c = await b.connect()
        body = b"hello, steelyard" * 100
        await c.send(req("POST", "/some/path?x=1&y=%20", "X-CaSe: Mixed", "x-dup: 1", "X-Dup: 2", body=body))
        code, headers, _, raw = await c.response()
        assert code == 200
        assert headers["content-type"] == "application/json"
        assert headers["x-served-by"] == "b1"
        assert int(headers["content-length"]) == len(raw)
        doc = json.loads(raw)
        assert doc == {
            "server": "b1",
            "method": "POST",
            "path": "/some/path?x=1&y=%20",
            "http_version": "1.1",
            "headers": [
                ["Host", "t"],
                ["X-CaSe", "Mixed"],
                ["x-dup", "1"],
                ["X-Dup", "2"],
                ["Content-Length", str(len(body))],
            ],
            "client": c.local,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        c.close()

    run(scenario)


def test_httpx_keep_alive_reuses_one_connection(run):
    async def scenario(b: Backend):
        async with httpx.AsyncClient(base_url=b.url) as client:
            docs = []
            for i in range(5):
                r = await client.get(f"/n/{i}")
                assert r.status_code == 200 and r.headers["x-served-by"] == "b1"
                docs.append(r.json())
        assert [d["path"] for d in docs] == [f"/n/{i}" for i in range(5)]
        assert len({d["client"] for d in docs}) == 1, "every request must arrive on the same connection"
        assert "connection" not in r.headers  # HTTP/1.1 keep-alive is implicit

    run(scenario)


def test_raw_keep_alive_many_requests(run):
    async def scenario(b: Backend):
        c = await b.connect()
        for i in range(20):
            await c.send(req("GET", f"/k{i}"))
            code, _, _, raw = await c.response()
            assert code == 200 and json.loads(raw)["path"] == f"/k{i}"
        c.close()

    run(scenario)


# ---- pipelining --------------------------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(run):
    async def scenario(b: Backend):
        c = await b.connect()
        # the first answer is the slowest one; order must still follow the requests
        await c.send(req("GET", "/sleep/50") + req("GET", "/healthz"))
        code1, _, _, raw1 = await c.response()
        code2, _, _, raw2 = await c.response()
        assert (code1, json.loads(raw1)["path"]) == (200, "/sleep/50")
        assert (code2, raw2) == (200, b"ok\n")

        batch = [
            req("GET", "/bytes/300000"),
            req("POST", "/echo", body=b"abc"),
            req("GET", "/status/204"),
            req("HEAD", "/bytes/70000"),
            req("GET", "/bytes/10?chunked=1"),
            req("GET", "/last"),
        ]
        await c.send(b"".join(batch))
        code, h, _, body = await c.response()
        assert code == 200 and hashlib.sha256(body).hexdigest() == expected_bytes_sha256(300000)
        code, _, _, body = await c.response()
        assert json.loads(body)["body_bytes"] == 3
        code, h, _, body = await c.response()
        assert code == 204 and body == b""
        code, h, _, body = await c.response(head_only=True)
        assert code == 200 and h["content-length"] == "70000"
        code, h, _, body = await c.response()
        assert h["transfer-encoding"] == "chunked" and body == PATTERN[:10]
        code, _, _, body = await c.response()
        assert json.loads(body)["path"] == "/last"
        c.close()

    run(scenario)


def test_deep_pipeline_with_delay(run):
    async def scenario(b: Backend):
        c = await b.connect()
        n = 100  # more than MAX_PIPELINE: reading pauses and resumes
        await c.send(b"".join(req("GET", f"/p{i}") for i in range(n)))
        for i in range(n):
            code, _, _, raw = await c.response()
            assert code == 200 and json.loads(raw)["path"] == f"/p{i}"
        c.close()

    run(scenario, delay=0.001)


# ---- request bodies ---------------------------------------------------------------------------------


def test_chunked_upload_is_hashed(run):
    async def scenario(b: Backend):
        c = await b.connect()
        pieces = [b"a" * 1, b"b" * 4096, b"c" * 100000, b"d" * 3]
        wire = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: t\r\n\r\n"
        head = req("POST", "/up", "Transfer-Encoding: chunked")
        await c.send(head)
        for i in range(0, len(wire), 777):  # framing split at arbitrary points
            await c.send(wire[i : i + 777])
        code, _, _, raw = await c.response()
        doc = json.loads(raw)
        whole = b"".join(pieces)
        assert code == 200
        assert doc["body_bytes"] == len(whole)
        assert doc["body_sha256"] == hashlib.sha256(whole).hexdigest()
        assert ["X-Trailer", "t"] not in doc["headers"]
        await c.send(req("GET", "/after"))  # the connection survives the chunked body
        assert json.loads((await c.response())[3])["path"] == "/after"
        c.close()

    run(scenario)


def test_httpx_streaming_chunked_upload(run):
    async def scenario(b: Backend):
        digest = hashlib.sha256()

        async def gen():
            for i in range(40):
                block = bytes([i]) * 65536
                digest.update(block)
                yield block

        async with httpx.AsyncClient(base_url=b.url) as client:
            r = await client.put("/stream", content=gen())
        doc = r.json()
        assert ["Transfer-Encoding", "chunked"] in doc["headers"]
        assert doc["body_bytes"] == 40 * 65536
        assert doc["body_sha256"] == digest.hexdigest()

    run(scenario)


def test_large_upload_is_streamed_not_buffered(run):
    async def scenario(b: Backend):
        size = 64 * MiB
        block = bytes(range(256)) * 4096  # 1 MiB
        c = await b.connect()
        tracemalloc.start()
        try:
            await c.send(req("POST", "/big", f"Content-Length: {size}"))
            for _ in range(size // len(block)):
                await c.send(block)
            code, _, _, raw = await c.response()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        doc = json.loads(raw)
        assert code == 200
        assert doc["body_bytes"] == size
        assert doc["body_sha256"] == hashlib.sha256(block * 64).hexdigest()
        assert peak < 16 * MiB, f"peak {peak} bytes while uploading {size}"
        c.close()

    run(scenario)


def test_expect_100_continue(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("POST", "/e", "Expect: 100-continue", "Content-Length: 5"))
        assert await c.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await c.send(b"12345")
        code, _, _, raw = await c.response()
        assert code == 200 and json.loads(raw)["body_bytes"] == 5
        c.close()

    run(scenario)


# ---- /bytes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 65536, 65537, 3 * MiB + 7])
@pytest.mark.parametrize("chunked", [False, True])
def test_bytes_content_matches_expected_sha(run, n, chunked):
    async def scenario(b: Backend):
        c = await b.connect()
        digest = hashlib.sha256()
        target = f"/bytes/{n}" + ("?chunked=1" if chunked else "")
        await c.send(req("GET", target))
        code, h, _, _ = await c.response(sink=digest.update)
        assert code == 200 and h["x-served-by"] == "b1"
        if chunked:
            assert h["transfer-encoding"] == "chunked" and "content-length" not in h
        else:
            assert h["content-length"] == str(n)
        assert digest.hexdigest() == expected_bytes_sha256(n)
        await c.send(req("GET", "/healthz"))  # still framed correctly afterwards
        assert (await c.response())[3] == b"ok\n"
        c.close()

    run(scenario)


def test_bytes_with_httpx(run):
    async def scenario(b: Backend):
        async with httpx.AsyncClient(base_url=b.url) as client:
            for target in ("/bytes/5000000", "/bytes/5000000?x=y&chunked=1"):
                digest = hashlib.sha256()
                async with client.stream("GET", target) as r:
                    async for data in r.aiter_raw():
                        digest.update(data)
                assert digest.hexdigest() == expected_bytes_sha256(5000000)

    run(scenario)


def test_bytes_respects_flow_control(run):
    async def scenario(b: Backend):
        n = 256 * MiB
        c = await b.connect()
        await c.send(req("GET", f"/bytes/{n}"))
        # the client reads nothing: the server must stop at the transport's high-water mark
        await eventually(lambda: any(p._write_paused for p in b.connections()), "server paused writing")
        [conn] = b.connections()
        for _ in range(50):
            await asyncio.sleep(0)
        assert conn._transport.get_write_buffer_size() <= 4 * MiB
        other = await b.connect()  # a stalled download does not block the loop
        await other.send(req("GET", "/healthz"))
        assert (await other.response())[3] == b"ok\n"
        other.close()
        digest = hashlib.sha256()
        code, h, _, _ = await c.response(sink=digest.update)
        assert code == 200 and h["content-length"] == str(n)
        assert digest.hexdigest() == expected_bytes_sha256(n)
        c.close()

    run(scenario)


def test_expected_bytes_sha256_follows_documented_recipe():
    pattern = b"".join(hashlib.sha256(SEED + i.to_bytes(4, "big")).digest() for i in range(2048))
    assert pattern == PATTERN and len(pattern) == 65536
    for n in (0, 1, 65535, 65536, 200000, 2 * MiB + 3):
        reps = pattern * (n // len(pattern) + 1)
        assert expected_bytes_sha256(n) == hashlib.sha256(reps[:n]).hexdigest()
    with pytest.raises(ValueError):
        expected_bytes_sha256(-1)


# ---- other routes ------------------------------------------------------------------------------------


def test_head_has_headers_but_no_body(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("HEAD", "/anything") + req("HEAD", "/bytes/123456") + req("HEAD", "/bytes/9?chunked=1"))
        code, h, _, _ = await c.response(head_only=True)
        assert code == 200 and h["content-type"] == "application/json" and int(h["content-length"]) > 0
        code, h, _, _ = await c.response(head_only=True)
        assert h["content-length"] == "123456" and h["x-served-by"] == "b1"
        code, h, _, _ = await c.response(head_only=True)
        assert h["transfer-encoding"] == "chunked"
        # had any body been sent, this would not parse as the next status line
        await c.send(req("GET", "/healthz"))
        assert (await c.response())[3] == b"ok\n"
        c.close()

    run(scenario)


def test_status_route(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/status/204"))
        code, h, _, body = await c.response()
        assert code == 204 and body == b"" and "content-length" not in h and h["x-served-by"] == "b1"
        await c.send(req("GET", "/status/304"))
        code, h, _, body = await c.response()
        assert code == 304 and body == b""
        await c.send(req("GET", "/status/500"))
        code, h, _, body = await c.response()
        assert (code, body) == (500, b"500 Internal Server Error\n")
        await c.send(req("POST", "/status/503", body=b"x"))
        assert (await c.response())[0] == 503
        for bad in ("/status/99", "/status/600", "/status/abc", "/bytes/-1", "/sleep/x"):
            await c.send(req("GET", bad))
            assert (await c.response())[0] == 400, bad  # a bad argument keeps the connection
        await c.send(req("GET", "/healthz"))
        code, h, _, body = await c.response()
        assert (code, body, h["content-type"]) == (200, b"ok\n", "text/plain; charset=utf-8")
        c.close()

    run(scenario)


def test_absolute_form_target_is_routed(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "http://example.test/bytes/7"))
        code, _, _, body = await c.response()
        assert (code, body) == (200, PATTERN[:7])
        c.close()

    run(scenario)


# ---- connection management ---------------------------------------------------------------------------


def test_close_route_closes(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/close") + req("GET", "/never"))
        code, h, _, raw = await c.response()
        assert code == 200 and h["connection"] == "close" and json.loads(raw)["path"] == "/close"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_client_connection_close_is_honoured(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/one", "Connection: close") + req("GET", "/two"))
        code, h, _, raw = await c.response()
        assert code == 200 and h["connection"] == "close" and json.loads(raw)["path"] == "/one"
        assert await c.at_eof()  # /two is never answered
        c.close()

    run(scenario)


def test_http10_closes_unless_keep_alive(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/old", version="1.0"))
        code, h, _, raw = await c.response()
        assert h["connection"] == "close" and json.loads(raw)["http_version"] == "1.0"
        assert await c.at_eof()
        c.close()

        c = await b.connect()
        for i in range(3):
            await c.send(req("GET", f"/ka{i}", "Connection: keep-alive", version="1.0"))
            code, h, _, raw = await c.response()
            assert code == 200 and h["connection"] == "keep-alive" and json.loads(raw)["path"] == f"/ka{i}"
        # HTTP/1.0 cannot take chunked: the same bytes come with Content-Length
        await c.send(req("GET", "/bytes/100000?chunked=1", "Connection: keep-alive", version="1.0"))
        code, h, _, body = await c.response()
        assert code == 200 and h["content-length"] == "100000" and "transfer-encoding" not in h
        assert hashlib.sha256(body).hexdigest() == expected_bytes_sha256(100000)
        c.close()

    run(scenario)


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
]


@pytest.mark.parametrize("bad", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_request_gets_400_and_close(run, bad):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/fine") + bad + req("GET", "/never"))
        code, _, _, raw = await c.response()
        assert code == 200 and json.loads(raw)["path"] == "/fine"
        code, h, _, body = await c.response()
        assert code == 400 and h["connection"] == "close" and h["x-served-by"] == "b1"
        assert body == b"400 Bad Request\n"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_malformed_after_a_pending_response_waits_its_turn(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/sleep/30") + b"NOT HTTP AT ALL\r\n\r\n")
        code, _, _, raw = await c.response()
        assert code == 200 and json.loads(raw)["path"] == "/sleep/30"
        code, h, _, _ = await c.response()
        assert code == 400 and h["connection"] == "close"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_upgrade_request_is_answered_then_closed(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/ws", "Connection: Upgrade", "Upgrade: websocket") + b"\x81\x05hello")
        code, h, _, raw = await c.response()
        assert code == 200 and h["connection"] == "close" and json.loads(raw)["path"] == "/ws"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_limits_give_414_and_431(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/" + "u" * 10000))
        code, h, _, _ = await c.response()
        assert code == 414 and h["connection"] == "close"
        assert await c.at_eof()
        c.close()
        c = await b.connect()
        await c.send(req("GET", "/", *(f"X-H{i}: v" for i in range(200))))
        code, h, _, _ = await c.response()
        assert code == 431 and h["connection"] == "close"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_half_closed_client_still_gets_pending_responses(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/sleep/20") + req("GET", "/x"))
        c.writer.write_eof()
        assert json.loads((await c.response())[3])["path"] == "/sleep/20"
        assert json.loads((await c.response())[3])["path"] == "/x"
        assert await c.at_eof()
        c.close()

    run(scenario)


def test_idle_connection_is_closed(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/"))
        assert (await c.response())[0] == 200
        assert await c.at_eof()  # idle keep-alive timeout
        c.close()
        c = await b.connect()
        await c.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finishes its head
        assert await c.at_eof()
        c.close()

    run(scenario, idle_timeout=0.2)


def test_stop_backend_closes_keep_alive_connections(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/"))
        assert (await c.response())[0] == 200
        await stop_backend(b.server)
        assert await c.at_eof()
        c.close()

    run(scenario)


# ---- delay -------------------------------------------------------------------------------------------


def test_delay_applies(run):
    async def scenario(b: Backend):
        async with httpx.AsyncClient(base_url=b.url) as client:
            await client.get("/healthz")  # connect first; then time only the request
            for target in ("/", "/status/500", "/bytes/10"):
                start = time.monotonic()
                r = await client.get(target)
                assert time.monotonic() - start >= 0.15, target  # generous lower bound, no upper bound
                assert r.headers["x-served-by"] == "slow"

    run(scenario, name="slow", delay=0.2)


def test_sleep_route_waits(run):
    async def scenario(b: Backend):
        c = await b.connect()
        start = time.monotonic()
        await c.send(req("GET", "/sleep/120"))
        code, _, _, raw = await c.response()
        assert time.monotonic() - start >= 0.1
        assert code == 200 and json.loads(raw)["path"] == "/sleep/120"
        c.close()

    run(scenario)


# ---- process entry point -----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_run_backend_process(sig):
    code = "from steelyard.demo.lab import run_backend; run_backend('proc1', '127.0.0.1', 0, 0.0)"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.fullmatch(r"backend proc1 listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, line
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{m.group(1)}/healthz")
        assert (r.status_code, r.text, r.headers["x-served-by"]) == (200, "ok\n", "proc1")
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert await proc.stderr.read() == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_names_are_rejected():
    async def main():
        for bad in ("", "a\r\nb", "é"):
            with pytest.raises(ValueError):
                await start_backend(bad, "127.0.0.1", 0)

    asyncio.run(main())


def test_healthz_answers_what_healthz_set_chose(run):
    async def scenario(b: Backend):
        c = await b.connect()
        await c.send(req("GET", "/healthz/set/503") + req("GET", "/healthz") + req("GET", "/healthz/set/99"))
        assert (await c.response())[::3] == (200, b"/healthz now answers 503\n")
        assert (await c.response())[::3] == (503, b"failing\n")
        assert (await c.response())[0] == 400  # out of range: refused, the setting stays
        await c.send(req("GET", "/healthz/set/200") + req("GET", "/healthz"))
        await c.response()
        assert (await c.response())[::3] == (200, b"ok\n")
        c.close()

    run(scenario)
