"""`mode = "udp"` listeners as a real process: dig through the balancer to two tiny DNS servers."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from .l4util import WAIT, DnsServer, dns_answer, l4_config, udp_port_open, wait_until

A, B = "127.0.0.11", "127.0.0.12"  # the two servers' answers (data only: nothing is sent there)


@pytest.fixture
def dns() -> Iterator[list[DnsServer]]:
    servers = [DnsServer(A), DnsServer(B)]
    yield servers
    for s in servers:
        s.close()


def dig(port: int, name: str = "svc.example.test") -> str:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), name, "A", "+short", "+time=3", "+tries=1"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    return out.stdout.strip()


def query(name: bytes = b"\x03svc\x07example\x04test\x00") -> bytes:
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"


def ask(sock: socket.socket, port: int) -> str:
    sock.sendto(query(), ("127.0.0.1", port))
    sock.settimeout(WAIT)
    data, _ = sock.recvfrom(512)
    return socket.inet_ntoa(data[-4:])


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) is not installed")
def test_dig_alternates_per_flow_with_round_robin(dns, balancer) -> None:
    lb = balancer(l4_config("udp", [s.address for s in dns]))
    answers = [dig(lb.port) for _ in range(4)]  # each dig has its own source port: a new flow
    assert answers == [A, B, A, B]


def test_a_flow_sticks_to_its_server(dns, balancer) -> None:
    lb = balancer(l4_config("udp", [s.address for s in dns]))
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as two,
    ):
        assert [ask(one, lb.port) for _ in range(3)] == [A, A, A]
        assert [ask(two, lb.port) for _ in range(3)] == [B, B, B]
    assert len(set(dns[0].sources)) == 1  # one flow socket per client


def test_per_datagram_balances_each_datagram(dns, balancer) -> None:
    lb = balancer(l4_config("udp", [s.address for s in dns], listener="per_datagram = true"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one:
        assert [ask(one, lb.port) for _ in range(4)] == [A, B, A, B]


def test_idle_flow_expires_and_the_next_datagram_opens_a_new_one(dns, balancer) -> None:
    lb = balancer(l4_config("udp", [dns[0].address], listener='idle_timeout = "200ms"'))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        assert ask(client, lb.port) == A
        flow_port = dns[0].sources[-1][1]
        assert wait_until(lambda: not udp_port_open(flow_port), timeout=5)  # the flow's socket is closed
        assert ask(client, lb.port) == A
    assert dns[0].sources[-1][1] != flow_port


def test_flow_table_is_bounded(dns, balancer) -> None:
    lb = balancer(l4_config("udp", [dns[0].address], listener="max_flows = 2"))
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for c in clients:
            assert ask(c, lb.port) == A
        first, second, third = (port for _, port in dns[0].sources)
        assert not udp_port_open(first)  # the least recently used flow made room (synchronously)
        assert udp_port_open(second) and udp_port_open(third)
    finally:
        for c in clients:
            c.close()


def test_dns_answer_helper() -> None:
    answer = dns_answer(query(), "127.0.0.11")
    assert answer[:2] == b"\x12\x34" and answer.endswith(socket.inet_aton("127.0.0.11"))
