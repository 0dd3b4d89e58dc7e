"""`max_conns`, `max_queue` and `queue_timeout` on pools behind `tcp` and `udp` listeners: every
pick holds a lease, so L4 connections and flows are bounded and queued as HTTP requests are."""

from __future__ import annotations

import socket
import struct
import threading

from .l4util import WAIT, DnsServer, l4_config, wait_until
from .test_admin import TOKEN, admin_port, api

LIMITED = 'servers = [ {{ address = "{address}", max_conns = 1 }} ]'


def limited(mode: str, address: str, pool: str = "", listener: str = "") -> str:
    """A config whose pool has one server at ``max_conns = 1`` (and ``pool`` lines more)."""
    text = l4_config(mode, [address], pool=pool, listener=listener)
    return text.replace(f'servers = [ {{ address = "{address}" }} ]', LIMITED.format(address=address))


class Counting:
    """A TCP server that greets each connection, echoes until EOF, and counts connections at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __call__(self, peer, index, server) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            peer.sock.sendall(b"hello %d\n" % index)
            while data := peer.sock.recv(65536):
                peer.sock.sendall(data)
        finally:
            with self.lock:
                self.now -= 1


def connect(lb) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    s.settimeout(WAIT)
    return s


def greeting(s: socket.socket) -> bytes:
    """The server's first line, or b"" when the balancer closed the connection instead."""
    buf = b""
    while not buf.endswith(b"\n"):
        data = s.recv(1)
        if not data:
            return buf
        buf += data
    return buf


def test_a_tcp_client_past_max_conns_with_no_queue_is_turned_away(inline, balancer) -> None:
    counting = Counting()
    srv = inline(counting)
    lb = balancer(limited("tcp", srv.address, pool="max_queue = 0"))
    with connect(lb) as first:
        assert greeting(first) == b"hello 0\n"
        with connect(lb) as second:
            assert greeting(second) == b""  # closed: the one server is at its max_conns
        first.sendall(b"still here\n")
        assert greeting(first) == b"still here\n"
    assert counting.most == 1


def test_a_queued_tcp_client_is_connected_when_a_place_frees_up(inline, balancer) -> None:
    counting = Counting()
    srv = inline(counting)
    lb = balancer(limited("tcp", srv.address, pool='max_queue = 1\nqueue_timeout = "30s"'))
    first = connect(lb)
    assert greeting(first) == b"hello 0\n"
    with connect(lb) as second:
        second.sendall(b"early\n")  # waits in the kernel while its client is queued
        with connect(lb) as third:
            assert greeting(third) == b""  # the queue (one place) holds the second: turned away
        first.close()  # a place frees up: the second goes to the server
        assert greeting(second) == b"hello 1\n"
        assert greeting(second) == b"early\n"
    assert counting.most == 1


def test_a_tcp_client_that_resets_while_queued_gives_up_its_place(inline, balancer) -> None:
    counting = Counting()
    srv = inline(counting)
    admin = f'\n[admin]\nbind = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'
    lb = balancer(limited("tcp", srv.address, pool='max_queue = 1\nqueue_timeout = "30s"') + admin)
    first = connect(lb)
    assert greeting(first) == b"hello 0\n"
    second = connect(lb)
    assert wait_until(lambda: api(admin_port(lb), "GET", "/api/v1/pools/app")[1]["queued"] == 1)
    second.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    second.close()  # a reset while queued (a FIN is a half-close: that client still gets its server)
    with connect(lb) as third:  # the one place in the queue is free again: third waits in it
        first.close()
        assert greeting(third) == b"hello 1\n"  # (b"": turned away; the one that left never connected)
    assert counting.most == 1


def test_a_tcp_client_queued_past_queue_timeout_is_closed(inline, balancer) -> None:
    counting = Counting()
    srv = inline(counting)
    lb = balancer(limited("tcp", srv.address, pool='max_queue = 4\nqueue_timeout = "200ms"'))
    with connect(lb) as first:
        assert greeting(first) == b"hello 0\n"
        with connect(lb) as second:
            assert greeting(second) == b""  # closed once it waited queue_timeout
        first.sendall(b"ok\n")
        assert greeting(first) == b"ok\n"
    assert counting.most == 1
    assert lb.wait_for(r"every server is at its max_conns", timeout=WAIT)


def test_a_udp_client_past_max_conns_waits_in_the_queue_for_a_flow(balancer) -> None:
    server = DnsServer("127.0.0.11")
    try:
        lb = balancer(
            limited(
                "udp", server.address, pool='max_queue = 4\nqueue_timeout = "30s"', listener='idle_timeout = "300ms"'
            )
        )
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as two,
        ):
            one.settimeout(WAIT)
            two.settimeout(WAIT)
            one.sendto(query, ("127.0.0.1", lb.port))
            assert one.recvfrom(512)[0][:2] == b"\x12\x34"
            two.sendto(query, ("127.0.0.1", lb.port))  # the one server holds one's flow: two waits
            for _ in range(3):  # one's flow stays busy meanwhile, and answered
                one.sendto(query, ("127.0.0.1", lb.port))
                assert one.recvfrom(512)[0][:2] == b"\x12\x34"
            # one goes quiet: its flow expires after idle_timeout, and two's flow opens
            assert two.recvfrom(512)[0][:2] == b"\x12\x34"
        flows = [port for _, port in server.sources]
        assert len(set(flows)) == 2 and flows[:4] == [flows[0]] * 4 and flows[4] != flows[0]
    finally:
        server.close()


def test_per_datagram_a_client_keeps_its_flow_when_every_server_is_full(balancer) -> None:
    server = DnsServer("127.0.0.11")
    try:
        lb = balancer(limited("udp", server.address, pool="max_queue = 0", listener="per_datagram = true"))
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one:
            one.settimeout(WAIT)
            for _ in range(3):  # its own flow holds the one place: later datagrams still go through it
                one.sendto(query, ("127.0.0.1", lb.port))
                assert one.recvfrom(512)[0][:2] == b"\x12\x34"
        assert len({port for _, port in server.sources}) == 1
    finally:
        server.close()
