"""Errors a user can read (400/502/503/504), `steelyard check`, and graceful shutdown."""

from __future__ import annotations

import socket
import subprocess
import threading

import httpx

from .conftest import STEELYARD, address_config, pool_config, servers_toml, simple_config
from .rawhttp import RawConnection, get


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: connecting is refused
    return port


def test_refused_server_is_502_and_the_client_connection_survives(balancer):
    lb = balancer(address_config(closed_port()))
    with RawConnection(lb.port) as c:
        for _ in range(2):
            c.send(get("/"))
            status, _, body = c.response()
            assert status == 502
            assert b"refused" in body


def test_no_usable_server_is_503(backends, balancer):
    (b,) = backends(1)
    lb = balancer(pool_config(servers_toml([b], weights=[0])))
    r = httpx.get(lb.url + "/")
    assert r.status_code == 503
    assert "no server" in r.text


def test_upstream_timeout_is_504(backends, balancer):
    (b,) = backends(1)
    lb = balancer(pool_config(servers_toml([b]), extra='timeout = "300ms"'))
    r = httpx.get(lb.url + "/sleep/3000", timeout=10)
    assert r.status_code == 504
    # the pool still works afterwards
    assert httpx.get(lb.url + "/", timeout=10).status_code == 200


def test_malformed_requests_get_400_and_the_connection_closes(backends, balancer):
    (b,) = backends(1)
    lb = balancer(simple_config([b]))
    bad = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    for raw in bad:
        with RawConnection(lb.port) as c:
            c.send(raw)
            status, headers, _ = c.response()
            assert status == 400, raw
            assert headers.get("connection") == "close"
            assert c.is_closed_by_peer()
    # the balancer is unharmed
    assert httpx.get(lb.url + "/").status_code == 200


def test_check_names_the_pool_and_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(pool_config('algorithm = "fastest"\nservers = [ { address = "127.0.0.1:9" } ]'))
    proc = subprocess.run([*STEELYARD, "check", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert 'pool "app"' in proc.stderr and "algorithm" in proc.stderr and "fastest" in proc.stderr

    good = tmp_path / "good.toml"
    good.write_text(pool_config('algorithm = "least_conn"\nservers = [ { address = "127.0.0.1:9" } ]'))
    proc = subprocess.run([*STEELYARD, "check", "--config", str(good)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "least_conn" in proc.stdout


def test_sigterm_finishes_in_flight_requests_then_exits_0(balancer):
    """A request in flight when SIGTERM arrives is answered; then the process exits 0."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    arrived, release = threading.Event(), threading.Event()

    def slow_server():
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            arrived.set()
            release.wait(20)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")

    threading.Thread(target=slow_server, daemon=True).start()
    lb = balancer(address_config(srv.getsockname()[1]))
    result = {}

    def client():
        with RawConnection(lb.port, timeout=30) as c:
            c.send(get("/slow"))
            result["response"] = c.response()

    t = threading.Thread(target=client)
    t.start()
    assert arrived.wait(20)
    lb.proc.send_signal(15)
    # wait until the balancer says it is stopping, then let the server answer
    lb.wait_for("stopping")
    release.set()
    t.join(20)
    assert result["response"][0] == 200 and result["response"][2] == b"done"
    assert lb.proc.wait(20) == 0
    srv.close()


def test_sigterm_answers_requests_on_idle_connections_with_close_then_closes_the_idle_ones(backends, balancer):
    """After SIGTERM, a connection idle between requests (or not yet used) stays open for a
    moment: a request that arrives on it is answered, with Connection: close, instead of meeting
    a closed connection; one that stays idle is closed after that moment."""
    lb = balancer(pool_config(servers_toml(backends(1))))
    fresh = RawConnection(lb.port)  # connected only (accepted: the balancer accepts in order, and
    idle = RawConnection(lb.port)  # these later connections are served before the stop)
    quiet = RawConnection(lb.port)
    for c in (idle, quiet):
        c.send(get("/"))
        assert c.response()[0] == 200  # served once: now idle between requests
    lb.proc.send_signal(15)
    lb.wait_for("stopping")
    for c, path in ((idle, "/after-stop"), (fresh, "/late")):
        c.send(get(path))
        status, headers, _ = c.response()
        assert status == 200 and headers.get("connection", "").lower() == "close"
        assert c.is_closed_by_peer()
    assert quiet.is_closed_by_peer()  # idle through the moment of grace: closed
    assert lb.proc.wait(20) == 0
    for c in (idle, fresh, quiet):
        c.close()


def test_response_timeout_applies_on_a_reused_connection(backends, balancer):
    """A bodyless request sent on a kept-alive upstream connection still gets its 504."""
    (b,) = backends(1)
    lb = balancer(pool_config(servers_toml([b]), extra='timeout = "300ms"'))
    with httpx.Client(timeout=10) as c:
        assert c.get(lb.url + "/").status_code == 200
        assert c.get(lb.url + "/sleep/3000").status_code == 504
        assert c.get(lb.url + "/").status_code == 200


def test_serve_on_an_address_in_use_says_so(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cfg = tmp_path / "busy.toml"
    cfg.write_text(pool_config('servers = [ { address = "127.0.0.1:9" } ]').replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    proc = subprocess.run([*STEELYARD, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    busy.close()
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "Traceback" not in proc.stderr


def test_client_that_stops_reading_is_disconnected_after_request_timeout(balancer):
    """A download nobody reads must not hold the balancer's server connection forever."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    dropped = threading.Event()

    def endless_server():
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
            block = b"x" * 65536
            try:
                for _ in range(200_000):  # bounded: far more than any buffer holds
                    conn.sendall(block)
            except OSError:
                dropped.set()

    threading.Thread(target=endless_server, daemon=True).start()
    cfg = address_config(srv.getsockname()[1]).replace('pool = "app"\n', 'pool = "app"\nrequest_timeout = "500ms"\n', 1)
    lb = balancer(cfg)
    with RawConnection(lb.port, timeout=15) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(get("/download"))
        assert c.sock.recv(1024).startswith(b"HTTP/1.1 200")
        # the client now reads nothing: the balancer gives up on it and drops the server
        assert dropped.wait(20), "the server connection was kept for a client that reads nothing"
    srv.close()
    assert httpx.get(lb.url + "/").status_code == 502  # the balancer carries on (its server is gone)
