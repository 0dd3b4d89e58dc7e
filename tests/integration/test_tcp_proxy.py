"""`mode = "tcp"` listeners as a real process, in front of threaded servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from steelyard.proxy.proxy_protocol import parse as parse_proxy

from .l4util import WAIT, closed_port, l4_config, recv_exactly, recv_line, recv_until_eof

MiB = 1 << 20
RELAYS = pytest.mark.parametrize("splice", ["true", "false"], ids=["splice", "copy"])  # both relay paths


def greeter(name: bytes):
    """A server that says its name, then echoes until EOF, then closes."""

    def handle(peer, index, server) -> None:
        peer.sock.sendall(name + b"\n")
        while data := peer.sock.recv(65536):
            peer.sock.sendall(data)

    return handle


def connect(lb) -> socket.socket:
    return socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)


def test_echo_round_robin(inline, balancer) -> None:
    a, b = inline(greeter(b"a")), inline(greeter(b"b"))
    lb = balancer(l4_config("tcp", [a.address, b.address]))
    names = []
    for i in range(4):
        with connect(lb) as s:
            names.append(recv_line(s))
            s.sendall(b"ping %d" % i)
            assert recv_exactly(s, 6) == b"ping %d" % i
    assert names == [b"a\n", b"b\n", b"a\n", b"b\n"]


@RELAYS
def test_large_transfer_both_ways_at_once(inline, balancer, splice) -> None:
    size = 128 * MiB
    up_data, down_data = os.urandom(size), os.urandom(size)
    got: dict[str, str] = {}

    def handle(peer, index, server) -> None:
        sender = threading.Thread(target=lambda: (peer.sock.sendall(down_data), peer.sock.shutdown(socket.SHUT_WR)))
        sender.start()
        h = hashlib.sha256()
        while data := peer.sock.recv(1 << 18):
            h.update(data)
        got["server received"] = h.hexdigest()
        sender.join(WAIT)

    srv = inline(handle)
    lb = balancer(l4_config("tcp", [srv.address], listener=f"splice = {splice}"))
    with connect(lb) as s:
        s.settimeout(60)
        sender = threading.Thread(target=lambda: (s.sendall(up_data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        h, n = hashlib.sha256(), 0
        while data := s.recv(1 << 18):
            h.update(data)
            n += len(data)
        sender.join(60)
    assert n == size and h.hexdigest() == hashlib.sha256(down_data).hexdigest()
    assert srv.wait_done(0)
    assert got["server received"] == hashlib.sha256(up_data).hexdigest()


@RELAYS
def test_client_half_close_reaches_the_server_and_the_reply_still_flows(inline, balancer, splice) -> None:
    def handle(peer, index, server) -> None:
        request = peer.read_all_until_eof()  # the client's FIN must arrive, or this never returns
        peer.sock.sendall(b"got " + request)

    srv = inline(handle)
    lb = balancer(l4_config("tcp", [srv.address], listener=f"splice = {splice}"))
    with connect(lb) as s:
        s.sendall(b"question")
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b"got question"


@RELAYS
def test_server_half_close_reaches_the_client_and_it_can_still_send(inline, balancer, splice) -> None:
    heard = []

    def handle(peer, index, server) -> None:
        peer.sock.sendall(b"banner, then my FIN")
        peer.sock.shutdown(socket.SHUT_WR)
        heard.append(peer.read_all_until_eof())

    srv = inline(handle)
    lb = balancer(l4_config("tcp", [srv.address], listener=f"splice = {splice}"))
    with connect(lb) as s:
        assert recv_until_eof(s) == b"banner, then my FIN"
        s.sendall(b"still talking")
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""  # the relay closes once both sides are done
    assert srv.wait_done(0) and heard == [b"still talking"]


def test_connect_retries_on_another_server_when_one_refuses(inline, balancer) -> None:
    live = inline(greeter(b"live"))
    lb = balancer(l4_config("tcp", [f"127.0.0.1:{closed_port()}", live.address, f"127.0.0.1:{closed_port()}"]))
    for _ in range(6):
        with connect(lb) as s:
            assert recv_line(s) == b"live\n"
    assert live.accepted == 6


def test_no_server_reachable_closes_the_client_and_logs_once(balancer) -> None:
    lb = balancer(l4_config("tcp", [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"]))
    for _ in range(5):
        with connect(lb) as s:
            assert recv_until_eof(s) == b""
    assert lb.terminate() == 0
    lines = [line for line in lb.lines if "reachable" in line]
    assert len(lines) == 1, lb.lines
    assert "no server of pool app reachable (2 tried" in lines[0]


def test_least_conn_spreads_long_lived_connections(inline, balancer) -> None:
    servers = [inline(greeter(name)) for name in (b"a", b"b", b"c")]
    lb = balancer(l4_config("tcp", [s.address for s in servers], pool='algorithm = "least_conn"'))
    conns: dict[bytes, list[socket.socket]] = {b"a\n": [], b"b\n": [], b"c\n": []}
    try:
        for _ in range(6):
            s = connect(lb)
            conns[recv_line(s)].append(s)
        assert [len(v) for v in conns.values()] == [2, 2, 2]
        for s in conns[b"a\n"]:  # a's connections end; the relay is gone once the client sees EOF
            s.shutdown(socket.SHUT_WR)
            assert recv_until_eof(s) == b""
            s.close()
        conns[b"a\n"] = []
        for _ in range(2):  # least_conn sends both new ones to a (round robin would not)
            s = connect(lb)
            conns[recv_line(s)].append(s)
        assert [len(v) for v in conns.values()] == [2, 2, 2]
    finally:
        for group in conns.values():
            for s in group:
                s.close()


def proxy_header_server(found: list):
    def handle(peer, index, server) -> None:
        while True:
            try:
                src, dst, n = parse_proxy(peer.buf)
                break
            except ValueError:
                peer._fill()
        while len(peer.buf) < n + len(b"payload"):  # the payload may come in a later segment
            peer._fill()
        found.append((src, dst, peer.buf[n:]))
        peer.sock.sendall(b"ok")

    return handle


def test_send_proxy_v1_and_v2(inline, balancer) -> None:
    for version in ("v1", "v2"):
        found: list = []
        srv = inline(proxy_header_server(found))
        lb = balancer(l4_config("tcp", [srv.address], listener=f'send_proxy = "{version}"'), name=f"{version}.toml")
        with connect(lb) as s:
            s.sendall(b"payload")
            assert recv_exactly(s, 2) == b"ok"
            me = s.getsockname()
        assert srv.wait_done(0)
        assert found == [(("127.0.0.1", me[1]), ("127.0.0.1", lb.port), b"payload")], version


@RELAYS
def test_idle_connection_is_closed(inline, balancer, splice) -> None:
    srv = inline(greeter(b"a"))
    lb = balancer(l4_config("tcp", [srv.address], listener=f'idle_timeout = "200ms"\nsplice = {splice}'))
    with connect(lb) as s:
        assert recv_line(s) == b"a\n"
        assert recv_until_eof(s, timeout=5) == b""  # closed by the sweep, well within 5 s
    assert srv.wait_done(0)


def test_graceful_stop_lets_open_connections_finish_within_the_grace(inline, balancer) -> None:
    srv = inline(greeter(b"a"))
    lb = balancer(l4_config("tcp", [srv.address], grace="1s"))
    with connect(lb) as s:
        assert recv_line(s) == b"a\n"
        lb.proc.send_signal(15)
        lb.wait_for("stopping")  # the balancer says it stops
        s.sendall(b"still here")
        assert recv_exactly(s, 10) == b"still here"  # the open connection still relays
        try:
            socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT).close()
            raise AssertionError("a new connection was accepted after stop")
        except ConnectionRefusedError:
            pass
        try:
            assert recv_until_eof(s, timeout=5) == b""  # aborted once the 1 s grace is over
        except ConnectionResetError:
            pass
    assert lb.proc.wait(WAIT) == 0
