"""Regressions found in review (B1..B14), turned into tests from the reviewer's scripts.

Real sockets on 127.0.0.1 only. Most tests run `steelyard serve` as a process (the ``balancer``
fixture) in front of demo backends (``backends``) or inline misbehaving servers (threads, as in
test_robustness.py); B7 and B11 need the data plane's objects (``PoolRuntime.publish``,
``server.load``) and run the real ``Runtime`` in-process on uvloop instead. Nothing sleeps to
synchronise: tests wait for a response, an event, a log line of the balancer or EOF, always with a
timeout. The one exception is B3, which polls the balancer's /proc fd count (every 50 ms, for at
most 10 s): there is no event to wait on from outside the process.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import threading
import time

import pytest
import uvloop

from steelyard.config import parse_config
from steelyard.control.runtime import Runtime
from steelyard.core.model import Server
from steelyard.demo.backend import start_backend, stop_backend

from .conftest import address_config, servers_toml, simple_config
from .inline import WAIT, InlineServer, Peer, read_until_eof, request_line, response_bytes
from .rawhttp import RawConnection, get

# --- helpers ---------------------------------------------------------------------------------------


def routed_config(app_servers: str, dead_address: str, *, dead_weight: int = 0, listener: str = "") -> str:
    """Listener -> pool "app" (``app_servers`` is TOML); paths under /dead/ go to pool "dead",
    whose only server has weight 0 by default (no usable server: every pick fails, a 503)."""
    return f"""
        shutdown_grace = "5s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"
        {listener}

        [[listener.route]]
        path_prefix = "/dead/"
        pool = "dead"

        [[pool]]
        name = "app"
        {app_servers}

        [[pool]]
        name = "dead"
        servers = [ {{ address = "{dead_address}", weight = {dead_weight} }} ]
        outlier = {{ consecutive_failures = 0 }}  # a refusing server stays in (502s, never 503s)
    """


def listener_config(servers: str, listener: str) -> str:
    """One listener (with ``listener`` settings, TOML) in front of one pool "app"."""
    return f"""
shutdown_grace = "5s"

[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"
{listener}

[[pool]]
name = "app"
{servers}
"""


def inline_servers(srv: InlineServer) -> str:
    return f'servers = [ {{ address = "{srv.address}" }} ]'


def echo(body: bytes) -> dict:
    return json.loads(body)


def echoed_headers(body: bytes, name: str) -> list[str]:
    return [v for n, v in echo(body)["headers"] if n.lower() == name.lower()]


def answer_every_request(peer: Peer, index: int, srv: InlineServer) -> None:
    """Inline handler: record each request of the connection and answer it 200 "ok" (keep-alive)."""
    while True:
        head, body = peer.request()
        srv.record(index, head, body)
        peer.sock.sendall(response_bytes(200, b"ok"))


def targets(srv: InlineServer) -> list[str]:
    with srv.lock:
        return [request_line(head)[1] for _, head, _ in srv.seen]


def probe(port: int, path: str = "/probe") -> None:
    """One more request through the app pool, answered: everything the proxy did before it
    (requests it forwarded earlier) has reached the inline server by the time this returns."""
    with RawConnection(port) as c:
        c.send(get(path))
        assert c.response()[0] == 200


def read_responses(c: RawConnection, n: int, method: str = "GET") -> list[tuple[int, dict, bytes]]:
    out = []
    for i in range(n):
        try:
            out.append(c.response(method))
        except (http.client.HTTPException, ConnectionError) as exc:
            pytest.fail(f"response {i + 1} of {n} never came ({exc!r}); got {[s for s, _, _ in out]}")
    return out


def send_ignoring_close(c: RawConnection, data: bytes) -> None:
    """For a sender thread: the proxy may close the connection before it took every byte."""
    try:
        c.send(data)
    except OSError:
        pass


def recv_until(sock: socket.socket, marker: bytes, buf: bytes = b"", timeout: float = WAIT) -> bytes:
    """Read until ``marker`` is in the bytes read (``buf`` included); fails on timeout or EOF."""
    sock.settimeout(timeout)
    while marker not in buf:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"no {marker!r} within {timeout}s; got {buf[:300]!r}")
        if not data:
            pytest.fail(f"EOF before {marker!r}; got {buf[:300]!r}")
        buf += data
    return buf


def rst_close(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN: the client is gone, unambiguously (not a half-close)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fd_count_at_most(pid: int, limit: int, timeout: float = 10.0) -> int:
    """Poll (every 50 ms, at most ``timeout`` s) until the process has at most ``limit`` fds."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
    return n


def run_in_process(scenario) -> None:
    """Run an async scenario on a fresh uvloop loop (the loop `steelyard serve` uses)."""
    uvloop.run(scenario())


def in_process_config(servers: list[dict], pool: dict | None = None) -> object:
    return parse_config(
        {
            "shutdown_grace": "2s",
            "listener": [{"name": "web", "bind": "127.0.0.1:0", "pool": "app"}],
            "pool": [{"name": "app", "servers": servers, **(pool or {})}],
        }
    )


async def read_one_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One Content-Length response from an asyncio stream: (head, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    return head, body


# --- B1: nothing pipelined behind a 503 reaches a server unless its answer reaches the client -----


@pytest.mark.parametrize(
    "first",
    [
        b"GET /dead/ HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /dead/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST /dead/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["get", "get-connection-close", "post-with-body"],
)
def test_b1_request_pipelined_behind_a_503_is_not_sent_to_a_server_behind_the_clients_back(inline, balancer, first):
    """A 503 (no usable server) followed, in the same write, by a POST for another pool: if the
    proxy closes the client connection after the 503, the POST must not reach any server (nobody
    will ever see its answer: a side effect behind the client's back); if it keeps the connection,
    the POST must be answered in order. With ``Connection: close`` on the first request it must close."""
    srv = inline(answer_every_request)
    lb = balancer(routed_config(inline_servers(srv), srv.address))
    probe(lb.port, "/warm")  # an idle upstream connection to "app": a leaked request goes out at once
    with RawConnection(lb.port) as c:
        c.send(first + b"POST /side-effect HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\npayload")
        status, headers, _ = c.response()
        assert status == 503
        try:
            second = c.response("POST")
        except (http.client.RemoteDisconnected, ConnectionError):
            second = None  # closed after the 503
    probe(lb.port)
    side = [t for t in targets(srv) if t == "/side-effect"]
    if b"Connection: close" in first:
        assert headers.get("connection", "").lower() == "close"
        assert second is None, "the proxy answered a request sent after Connection: close"
    if second is None:
        assert side == [], "the pipelined POST reached the server, but the client connection was closed unanswered"
    else:
        assert second[0] == 200 and second[2] == b"ok", second
        assert side == ["/side-effect"]


@pytest.mark.parametrize(
    "refused",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host: 400
        b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",  # 405
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",  # 501
    ],
    ids=["no-host", "connect", "te-gzip"],
)
def test_b1_request_pipelined_behind_a_refused_one_never_reaches_a_server(inline, balancer, refused):
    """(t_pipeline_err.py / t_refuse_attr.py) A refused request closes the connection; what was
    pipelined behind it is never forwarded."""
    srv = inline(answer_every_request)
    lb = balancer(routed_config(inline_servers(srv), srv.address))
    probe(lb.port, "/warm")
    with RawConnection(lb.port) as c:
        c.send(refused + b"POST /side-effect HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\npayload")
        status, headers, _ = c.response()
        assert status in (400, 405, 501), status
        assert headers.get("connection", "").lower() == "close"
        assert c.is_closed_by_peer()
    probe(lb.port)
    assert "/side-effect" not in targets(srv)
    assert targets(srv).count("/") == 0


# --- B2: trailers ----------------------------------------------------------------------------------


def test_b2_response_trailers_do_not_leak_into_the_next_response_on_a_pooled_connection(inline, balancer):
    """Client A's response ends with a trailer; client B's request then reuses the same upstream
    connection: B must not get A's trailer as a header of its own response."""
    first = threading.Event()

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        while True:
            head, body = peer.request()
            srv.record(index, head, body)
            if not first.is_set():
                first.set()
                peer.sock.sendall(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n0\r\nX-Secret-Trailer: for-client-A\r\n\r\n"
                )
            else:
                peer.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")

    srv = inline(handler)
    lb = balancer(address_config(srv.port))
    with RawConnection(lb.port) as a:
        a.send(get("/a"))
        status, _, body = a.response()
        assert (status, body) == (200, b"abc")
    with RawConnection(lb.port) as b:
        b.send(get("/b"))
        status, headers, body = b.response()
    assert (status, body) == (200, b"hi")
    assert "x-secret-trailer" not in headers, f"client B got client A's trailer: {headers}"


def test_b2_request_trailers_are_not_forwarded_as_headers_of_any_request(backends, balancer):
    """A chunked POST with a trailer, pipelined behind a slow GET and followed by another GET: the
    trailer must not show up as a header of the POST (whose head is built only when its turn comes)
    nor of the request queued behind it. (The demo backend reports headers only, never trailers.)"""
    (b,) = backends(["trailers"])
    lb = balancer(simple_config([b]))
    with RawConnection(lb.port) as c:
        c.send(
            b"GET /sleep/200 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Injected-By-Trailer: yes\r\n\r\n"
            b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        got = read_responses(c, 3)
    assert [s for s, _, _ in got] == [200, 200, 200]
    paths = [echo(body)["path"] for _, _, body in got]
    assert paths == ["/sleep/200", "/echo", "/after"]
    post = echo(got[1][2])
    assert post["body_bytes"] == 3 and post["body_sha256"] == hashlib.sha256(b"abc").hexdigest()
    for path, (_, _, body) in zip(paths, got):
        assert echoed_headers(body, "X-Injected-By-Trailer") == [], f"{path} got the POST's trailer as a header"


def test_b2_content_length_in_a_response_trailer_is_refused_not_mangled(inline, balancer):
    """RFC 9110 6.5.1 forbids framing fields in trailers, and llhttp refuses a Content-Length
    trailer. By then the head is forwarded, so the client connection is aborted: the client
    must never take the response for complete, and the balancer keeps serving."""
    first = threading.Event()

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        while True:
            head, body = peer.request()
            srv.record(index, head, body)
            if not first.is_set():
                first.set()
                peer.sock.sendall(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n"
                )
            else:
                peer.sock.sendall(response_bytes(200, b"next"))

    srv = inline(handler)
    lb = balancer(address_config(srv.port))
    with RawConnection(lb.port) as c:
        c.send(get("/t"))
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            c.response()  # the chunked body never gets its last chunk from the proxy
    with RawConnection(lb.port) as c:
        c.send(get("/next"))
        status, _, body = c.response()
        assert (status, body) == (200, b"next")


# --- B3: tunnels release both connections ------------------------------------------------------------

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def _tunnel_server(mode: str):
    """101, then echo. ``server-closes-first``: after one message the server closes. Otherwise on
    the client's EOF: ``half-close-both`` half-closes back and keeps its socket, else it closes."""

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        srv.record(index, peer.head())
        peer.sock.sendall(SWITCH)
        while True:
            data = peer.buf or peer.sock.recv(65536)
            peer.buf = b""
            if not data:
                break
            peer.sock.sendall(data)
            if mode == "server-closes-first":
                return  # (InlineServer closes the socket)
        if mode == "half-close-both":
            peer.sock.shutdown(socket.SHUT_WR)
            srv.release.wait(60)  # keeps its fd: the proxy must close its side on its own

    return handler


@pytest.mark.parametrize("mode", ["client-half-closes", "half-close-both", "client-closes", "server-closes-first"])
def test_b3_finished_tunnels_release_both_connections(inline, balancer, mode):
    """Five tunnels that end cleanly (half-closes crossing both ways, or a plain close): the
    balancer must close both of its sockets of each, so its fd count returns to its baseline."""
    srv = inline(_tunnel_server(mode))
    lb = balancer(address_config(srv.port))
    pid = lb.pid()
    baseline = fd_count(pid)
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
        s.sendall(UPGRADE)
        buf = recv_until(s, b"\r\n\r\n")
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        msg = b"ping-%d" % i
        s.sendall(msg)
        recv_until(s, msg, rest)
        if mode == "client-closes":
            s.close()
            continue
        if mode != "server-closes-first":
            s.shutdown(socket.SHUT_WR)
        _, how = read_until_eof(s)  # the server's EOF (or close) must cross the tunnel
        s.close()
        assert how == "eof", f"tunnel {i}: {how}"
    assert srv.accepted == 5
    after = wait_fd_count_at_most(pid, baseline)
    assert after <= baseline, f"{after - baseline} fds still open in the balancer 10s after 5 tunnels ended ({mode})"
    assert lb.proc.poll() is None


# --- B4: a 101 on a reused upstream connection -------------------------------------------------------


def test_b4_101_on_a_reused_connection_does_not_inject_a_last_chunk_into_the_tunnel(inline, balancer):
    """The upstream connection first carries a chunked response, then (kept alive, reused) an
    upgrade: the first tunnel bytes the client sees are the server's, not a stray ``0\\r\\n\\r\\n``."""
    frame = b"SERVER-FIRST-FRAME"

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        while True:
            head = peer.head()
            srv.record(index, head)
            if b"\r\nupgrade:" in head.lower():
                peer.sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: upgrade\r\n\r\n" + frame
                )
                srv.release.wait(60)
                return
            peer.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")

    srv = inline(handler)
    lb = balancer(address_config(srv.port))
    with RawConnection(lb.port) as a:
        a.send(get("/"))
        status, _, body = a.response()
        assert (status, body) == (200, b"hi")
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    try:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x-test\r\n\r\n")
        buf = recv_until(s, b"\r\n\r\n")
        head, _, tunnel = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        s.settimeout(WAIT)
        while len(tunnel) < len(frame) and tunnel == frame[: len(tunnel)]:
            data = s.recv(65536)
            if not data:
                break
            tunnel += data
    finally:
        s.close()
    assert tunnel.startswith(frame), f"first tunnel bytes: {tunnel[:40]!r}"


# --- B5: a long pipeline of requests that fail at once -----------------------------------------------


@pytest.mark.parametrize("dead", ["weight-0", "refused"])
def test_b5_fifteen_hundred_pipelined_requests_to_a_pool_with_no_usable_server(backends, balancer, dead):
    """One live request then 1500 to a pool that cannot serve (weight 0: 503; or, like busy.toml,
    a server that refuses connections: 502), all in one write: every one is answered, or the
    connection closes cleanly after complete answers. No hang, and the balancer lives on."""
    (live,) = backends([("live", "50ms")])
    hole = socket.socket()  # bound, never listening: connecting to it is refused
    hole.bind(("127.0.0.1", 0))
    try:
        if dead == "weight-0":
            lb = balancer(routed_config(servers_toml([live]), live.address))
            want = 503
        else:
            lb = balancer(routed_config(servers_toml([live]), f"127.0.0.1:{hole.getsockname()[1]}", dead_weight=1))
            want = 502
        n = 1500
        payload = get("/live") + get("/dead/") * n
        statuses: list[int] = []
        with RawConnection(lb.port, timeout=WAIT) as c:
            sender = threading.Thread(target=send_ignoring_close, args=(c, payload), daemon=True)
            sender.start()
            for _ in range(n + 1):
                try:
                    statuses.append(c.response()[0])
                except http.client.RemoteDisconnected:
                    break  # closed cleanly between two responses
                except TimeoutError:
                    pytest.fail(f"hang after {len(statuses)} of {n + 1} responses")
            sender.join(WAIT)
        assert statuses[0] == 200
        assert set(statuses[1:]) <= {want}, sorted(set(statuses))
        assert lb.proc.poll() is None, "the balancer process died"
        with RawConnection(lb.port) as c:
            c.send(get("/after"))
            status, _, body = c.response()
            assert status == 200 and echo(body)["path"] == "/after"
            c.send(get("/dead/after"))
            assert c.response()[0] == want
    finally:
        hole.close()


# --- B6: a malformed request pipelined behind a valid one --------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        b"GET /second HTTP/1.1\r\n\r\n",  # no Host (refused at dispatch)
        b"GET /second HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",  # parser error
        b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n",  # parser error at the first byte
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["no-host", "bad-header-line", "garbage", "cl-and-te"],
)
def test_b6_valid_request_is_answered_before_the_400_for_the_malformed_one_behind_it(backends, balancer, bad):
    (b,) = backends(["b6"])
    lb = balancer(simple_config([b]))
    with RawConnection(lb.port) as c:
        c.send(get("/sleep/200") + bad)
        first, second = read_responses(c, 2)
        assert first[0] == 200 and echo(first[2])["path"] == "/sleep/200", first[:2]
        assert second[0] == 400, second
        assert second[1].get("connection", "").lower() == "close"
        assert c.is_closed_by_peer()


# --- B7: a server removed from its pool while busy ---------------------------------------------------


def test_b7_busy_connection_of_a_removed_server_is_closed_when_its_response_is_done():
    """PoolRuntime.publish drops the server while its request is in flight: the response still
    reaches the client, then that upstream connection is closed (the server sees EOF), not kept
    idle for a server that is no longer in the pool. The next request goes to the new server."""

    async def scenario() -> None:
        got_request, release, saw_eof = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def old_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                got_request.set()
                await release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold")
                await writer.drain()
                await reader.read()  # b"" at EOF: the proxy closed its connection
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            except asyncio.CancelledError:
                return  # the scenario is over (it failed): nothing more to see
            saw_eof.set()
            writer.close()

        old = await asyncio.start_server(old_server, "127.0.0.1", 0)
        new = await start_backend("new", "127.0.0.1", 0)
        old_port, new_port = (s.sockets[0].getsockname()[1] for s in (old, new))
        rt = Runtime(in_process_config([{"address": f"127.0.0.1:{old_port}"}], {"idle_timeout": "60s"}))
        await rt.start()
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", rt.listeners["web"].port)
            writer.write(get("/slow"))
            await asyncio.wait_for(got_request.wait(), WAIT)
            pool = rt.pools["app"]
            (old_server_obj,) = pool.snapshot.servers
            old_upstreams = pool.upstreams[old_server_obj]
            pool.publish([Server("new", "127.0.0.1", new_port)])
            release.set()
            head, body = await read_one_response(reader)
            assert head.startswith(b"HTTP/1.1 200") and body == b"old"
            try:
                await asyncio.wait_for(saw_eof.wait(), WAIT)
            except TimeoutError:
                pytest.fail("the removed server's connection stayed open after its response")
            assert not old_upstreams.idle, "a connection to the removed server was parked idle"
            writer.write(get("/next"))
            head, body = await read_one_response(reader)
            assert b"X-Served-By: new" in head and echo(body)["path"] == "/next"
        finally:
            if writer is not None:
                writer.close()
            await rt.stop(0)
            old.close()
            await stop_backend(new)

    run_in_process(scenario)


# --- B8: a response body that stalls -------------------------------------------------------------------


def test_b8_response_body_that_stalls_is_cut_off_by_the_pool_timeout(inline, balancer):
    """Head plus 7 of 100 body bytes, then nothing: with the pool's timeout at 300ms the client
    connection is aborted soon (HAProxy: timeout server), and the upstream connection closed."""

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        head, body = peer.request()
        srv.record(index, head, body)
        peer.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        peer.read_all_until_eof()

    srv = inline(handler)
    lb = balancer(address_config(srv.port, 'timeout = "300ms"'))
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    try:
        s.sendall(get("/stall"))
        data, _how = read_until_eof(s, timeout=5.0)  # fails when nothing ends the response in 5s
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b"partial"  # cut short, never padded
    assert srv.wait_done(0), "the stalled upstream connection was never closed"


# --- B9: half-close after pipelined requests ---------------------------------------------------------


def test_b9_three_pipelined_requests_then_half_close_get_three_responses_then_eof(backends, balancer):
    (b,) = backends([("half", "50ms")])
    lb = balancer(simple_config([b]))
    with RawConnection(lb.port) as c:
        c.send(get("/a") + get("/b") + get("/c"))
        c.sock.shutdown(socket.SHUT_WR)
        got = read_responses(c, 3)
        assert [(s, echo(body)["path"]) for s, _, body in got] == [(200, "/a"), (200, "/b"), (200, "/c")]
        assert c.is_closed_by_peer()


# --- B10: graceful stop with a response head still to come ---------------------------------------------


def test_b10_response_in_flight_during_sigterm_says_connection_close(inline, balancer):
    got_request, release = threading.Event(), threading.Event()

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        head, body = peer.request()
        srv.record(index, head, body)
        got_request.set()
        release.wait(WAIT)
        peer.sock.sendall(response_bytes(200, b"late"))
        peer.read_all_until_eof()

    srv = inline(handler)
    lb = balancer(address_config(srv.port))
    try:
        with RawConnection(lb.port) as c:
            c.send(get("/inflight"))
            assert got_request.wait(WAIT)
            lb.proc.send_signal(signal.SIGTERM)
            # its "stopping" line is the event: the signal was handled before the response comes
            lb.wait_for(r"stopping")
            release.set()
            status, headers, body = c.response()
            assert (status, body) == (200, b"late")
            assert headers.get("connection", "").lower() == "close", headers
            assert c.is_closed_by_peer()
        assert lb.proc.wait(WAIT) == 0
    finally:
        release.set()


# --- B11: least_time and a client that goes away --------------------------------------------------------


def test_b11_client_gone_mid_request_is_neither_success_nor_failure_for_least_time():
    async def scenario() -> None:
        got_request, upstream_gone = asyncio.Event(), asyncio.Event()

        async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if head.startswith(b"GET /hang "):
                        got_request.set()
                        await reader.read()  # until the proxy gives the connection up
                        break
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            except asyncio.CancelledError:
                return  # the scenario is over (it failed): nothing more to see
            upstream_gone.set()
            writer.close()

        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        rt = Runtime(in_process_config([{"address": f"127.0.0.1:{port}"}], {"algorithm": "least_time"}))
        await rt.start()
        lport = rt.listeners["web"].port
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", lport)
            writer.write(get("/warm"))
            _, body = await read_one_response(reader)
            assert body == b"ok"
            writer.close()
            (server_obj,) = rt.pools["app"].snapshot.servers
            load = server_obj.load
            before = (load.requests, load.failures, load.ewma)
            assert before[:2] == (1, 0)
            client = socket.create_connection(("127.0.0.1", lport), timeout=WAIT)  # (no loop needed)
            client.sendall(get("/hang"))
            await asyncio.wait_for(got_request.wait(), WAIT)
            assert load.active == 1
            rst_close(client)
            try:
                await asyncio.wait_for(upstream_gone.wait(), WAIT)
            except TimeoutError:
                pytest.fail("the upstream connection of the abandoned request was kept")
            assert load.active == 0
            assert (load.requests, load.failures) == before[:2], "a client abort was counted for the server"
            assert load.ewma == before[2], "a client abort fed least_time's latency average"
        finally:
            await rt.stop(0)
            srv.close()

    run_in_process(scenario)


# --- B12: a connection that never sends ---------------------------------------------------------------


def test_b12_new_connection_that_sends_nothing_is_closed_after_request_timeout(backends, balancer):
    (b,) = backends(["b12"])
    lb = balancer(listener_config(servers_toml([b]), 'keepalive_timeout = "10s"\nrequest_timeout = "300ms"'))
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    try:
        t0 = time.monotonic()
        data, _how = read_until_eof(s, timeout=5.0)  # fails: still open after 5s (keepalive_timeout is 10s)
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert elapsed < 5.0


def test_b12_new_connection_is_not_closed_before_its_timeout(backends, balancer):
    """(t_early.py) Connections opened at different moments relative to the balancer's timeout
    sweep: none may be closed before request_timeout (500ms) has passed since it was opened."""
    (b,) = backends(["early"])
    lb = balancer(listener_config(servers_toml([b]), 'keepalive_timeout = "500ms"\nrequest_timeout = "500ms"'))
    results: list[float | str] = []
    lock = threading.Lock()

    def watch(s: socket.socket, t0: float) -> None:
        s.settimeout(WAIT)
        try:
            while s.recv(65536):
                pass
            out: float | str = time.monotonic() - t0
        except OSError as exc:
            out = repr(exc)
        s.close()
        with lock:
            results.append(out)

    threads = []
    # Spread the openings over ~0.3s without sleeping: a 10ms request to the backend between two.
    with RawConnection(b.port) as spacer:
        for _ in range(24):
            s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
            t = threading.Thread(target=watch, args=(s, time.monotonic()), daemon=True)
            t.start()
            threads.append(t)
            spacer.send(get("/sleep/10"))
            spacer.response()
    for t in threads:
        t.join(WAIT + 1)
    assert len(results) == 24 and all(isinstance(r, float) for r in results), results
    early = sorted(r for r in results if r < 0.45)
    assert not early, f"{len(early)}/24 closed before the 500ms timeout: {[round(e, 3) for e in early]}"
    assert max(results) < 5.0


# --- B13: a 503 for a bodyless request keeps the connection ----------------------------------------------


def test_b13_503_for_a_bodyless_get_keeps_the_client_connection(backends, balancer):
    (b,) = backends(["b13"])
    lb = balancer(routed_config(servers_toml([b]), b.address))
    with RawConnection(lb.port) as c:
        c.send(get("/dead/one"))
        status, headers, _ = c.response()
        assert status == 503
        assert headers.get("connection", "").lower() != "close", headers
        c.send(get("/dead/two"))
        assert c.response()[0] == 503
        c.send(get("/alive"))
        status, _, body = c.response()
        assert status == 200 and echo(body)["path"] == "/alive"


# --- B14: header and framing details ----------------------------------------------------------------------


def test_b14_connection_host_does_not_strip_the_host_header(backends, balancer):
    (b,) = backends(["b14"])
    lb = balancer(simple_config([b]))
    with RawConnection(lb.port) as c:
        c.send(b"GET /h HTTP/1.1\r\nHost: t.example\r\nConnection: host\r\n\r\n")
        status, _, body = c.response()
    assert status == 200
    assert echoed_headers(body, "Host") == ["t.example"]


@pytest.mark.parametrize(
    "target, path, host",
    [("http://h.example/path?q=1", "/path?q=1", "h.example"), ("http://h.example?q=1", "/?q=1", "h.example")],
    ids=["with-path", "query-without-path"],
)
def test_b14_absolute_form_target_keeps_its_query(backends, balancer, target, path, host):
    (b,) = backends(["b14"])
    lb = balancer(simple_config([b]))
    with RawConnection(lb.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: other\r\n\r\n".encode())
        status, _, body = c.response()
    assert status == 200
    assert (echo(body)["path"], echoed_headers(body, "Host")) == (path, [host])


def _deframe(head: bytes, rest: bytes, how: str) -> bytes:
    """The body of a response read to EOF, per its own framing; fails when it is incomplete."""
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    te = fields.get(b"transfer-encoding")
    if te is not None and te.split(b",")[-1].strip() == b"chunked":
        body = b""
        while True:
            size_line, sep, rest = rest.partition(b"\r\n")
            assert sep, f"chunked body cut short: {rest[:80]!r}"
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return body
            assert len(rest) >= size + 2, "chunk cut short"
            body, rest = body + rest[:size], rest[size + 2 :]
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        assert len(rest) >= length, f"{len(rest)} of {length} body bytes"
        return rest[:length]
    assert how == "eof", "a close-delimited body ended with a reset: truncated"
    return rest


def test_b14_non_chunked_transfer_encoding_from_a_server_is_502_or_passed_intact(inline, balancer):
    """``Transfer-Encoding: gzip`` without chunked: the body runs until the server closes
    (RFC 9112 6.3). The client gets a 502, or the whole body intact; never a hang or a silent cut."""
    payload = b"\x1f\x8b-pretend-gzip-" * 200

    def handler(peer: Peer, index: int, srv: InlineServer) -> None:
        head, body = peer.request()
        srv.record(index, head, body)
        peer.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + payload)
        # returning closes the connection: the end of the body

    srv = inline(handler)
    lb = balancer(address_config(srv.port))
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    try:
        s.sendall(get("/gz", extra="Connection: close\r\n"))
        data, how = read_until_eof(s)  # fails on a hang
    finally:
        s.close()
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head: {data[:200]!r} ({how})"
    status = int(head.split(b" ", 2)[1])
    if status == 502:
        return
    assert status == 200, head
    assert _deframe(head, rest, how) == payload
