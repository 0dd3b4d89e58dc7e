"""The DNS balancer with real processes: demo backends on 127.0.0.2-4, `steelyard serve` answering
`dig` over UDP and TCP from its health checks, and a bounded storm of malformed packets."""

from __future__ import annotations

import json
import random
import re
import select
import signal
import socket
import subprocess
import time

import dns.message
import dns.rcode

from .conftest import Backend

WAIT = 15.0


def dns_config(backends: list[Backend], v6: Backend) -> str:
    servers = ", ".join(f'{{ address = "{b.address}", name = "{b.name}" }}' for b in [*backends, v6])
    return f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [[pool]]
        name = "app"
        servers = [ {servers} ]

        [pool.health]
        interval = "200ms"
        fail_interval = "100ms"
        timeout = "300ms"
        rise = 2
        fall = 2

        [[dns]]
        bind = "127.0.0.1:0"
        zone = "example.test."

        [[dns.record]]
        name = "app"
        pool = "app"
        policy = "round_robin"
        ttl = 5
    """


def dig(port: int, *args: str) -> str:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def short(port: int, *args: str) -> list[str]:
    return dig(port, *args, "+short").split()


def start(backends, balancer):
    names = ["a", "b", "c"]
    started = [Backend(n, port=0, host=f"127.0.0.{i}") for i, n in enumerate(names, 2)]
    backends.adopt(started)
    v6 = Backend("v6", port=0, host="::1")
    backends.adopt([v6])
    lb = balancer(dns_config(started, v6))
    port = int(next(m.group(1) for line in lb.lines if (m := re.search(r"dns \S+ serving \S+ on [\d.]+:(\d+)", line))))
    return started, lb, port


def test_dig_gets_the_healthy_servers_in_rotating_order_over_udp_and_tcp(backends, balancer):
    servers, lb, port = start(backends, balancer)
    want = {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    answers = [short(port, "app.example.test", "A") for _ in range(3)]
    assert all(set(a) == want and len(a) == 3 for a in answers), answers
    assert len({a[0] for a in answers}) == 3  # each query leads with another server
    assert set(short(port, "app.example.test", "A", "+tcp")) == want
    assert short(port, "app.example.test", "AAAA") == ["::1"]
    assert short(port, "example.test", "SOA")[0] == "ns1.example.test."
    assert "status: NXDOMAIN" in dig(port, "nope.example.test", "A")
    nodata = dig(port, "app.example.test", "MX")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata and "SOA" in nodata
    assert "status: REFUSED" in dig(port, "example.org", "A")

    victim = servers[0]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    killed = time.monotonic()
    deadline = killed + WAIT
    while "127.0.0.2" in short(port, "app.example.test", "A") and time.monotonic() < deadline:
        pass  # each poll is a real query
    gone_after = time.monotonic() - killed
    assert set(short(port, "app.example.test", "A")) == want - {"127.0.0.2"}
    again = Backend("a", port=victim.port, host="127.0.0.2")
    backends.adopt([again])
    restarted = time.monotonic()
    deadline = restarted + WAIT
    while "127.0.0.2" not in short(port, "app.example.test", "A") and time.monotonic() < deadline:
        pass
    back_after = time.monotonic() - restarted
    assert set(short(port, "app.example.test", "A")) == want
    print(
        f"\ndns: a killed server left the answers after {gone_after * 1000:.0f} ms (fall 2 × 100-200 ms + "
        f"300 ms timeout), came back {back_after * 1000:.0f} ms after its restart (rise 2)"
    )


def test_ten_thousand_bad_packets_leave_the_server_answering(backends, balancer):
    _, lb, port = start(backends, balancer)
    rng = random.Random(11)
    good = dns.message.make_query("app.example.test.", "A").to_wire()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0)
    replies: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                replies.append(sock.recv(65535))
            except BlockingIOError:
                return

    for i in range(10_000):  # bounded: 10,000 packets, random or mutated from a good query
        if i % 2:
            packet = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        else:
            packet = bytearray(good)
            for _ in range(rng.randrange(1, 6)):
                packet[rng.randrange(len(packet))] = rng.getrandbits(8)
            packet = bytes(packet[: rng.randrange(1, len(packet) + 1)])
        sock.sendto(packet, ("127.0.0.1", port))
        if i % 100 == 0:
            drain()
    # (a resolver asks again when a datagram is lost: the storm may still fill the server's socket buffer)
    final = dns.message.make_query("app.example.test.", "A")
    final.id = (dns.message.from_wire(good).id + 1) % 65536  # (not an ID any storm packet was built from)
    want_id = final.id
    answered = None
    deadline = time.monotonic() + WAIT
    while answered is None and time.monotonic() < deadline:
        sock.settimeout(1.0)
        sock.sendto(final.to_wire(), ("127.0.0.1", port))
        try:
            while answered is None:
                data = sock.recv(65535)
                replies.append(data)
                if len(data) > 12:
                    reply = dns.message.from_wire(data)
                    if reply.id == want_id and reply.rcode() == dns.rcode.NOERROR and reply.answer:
                        answered = reply
        except TimeoutError:
            continue
    sock.settimeout(0.2)
    try:
        while True:
            replies.append(sock.recv(65535))
    except (TimeoutError, BlockingIOError):
        pass
    sock.close()
    assert answered is not None
    for data in replies:  # every reply it sent parses (FORMERR replies carry only a header)
        if len(data) > 12:
            dns.message.from_wire(data)
    assert lb.proc.poll() is None
    print(f"\ndns fuzz: 10,000 packets, {len(replies)} replies, all parse; a normal query still answered")


def test_dns_queries_are_counted_on_metrics_and_ctl_dns_shows_the_answers(backends, balancer):
    from prometheus_client.parser import text_string_to_metric_families

    from .test_admin import TOKEN, admin_port, api, ctl

    started = [Backend(n, host=f"127.0.0.{i}") for i, n in enumerate(["a", "b"], 2)]
    v6 = Backend("v6", host="::1")
    backends.adopt([*started, v6])
    lb = balancer(dns_config(started, v6) + f'\n[admin]\nbind = "127.0.0.1:0"\ntoken = "{TOKEN}"\n')
    port = int(next(m.group(1) for line in lb.lines if (m := re.search(r"dns \S+ serving \S+ on [\d.]+:(\d+)", line))))
    for _ in range(7):
        short(port, "app.example.test", "A")
    dig(port, "nope.example.test", "A")
    status, text = api(admin_port(lb), "GET", "/metrics", token=None)
    samples = {
        (s.labels["name"], s.labels["type"], s.labels["rcode"]): s.value
        for f in text_string_to_metric_families(text.decode())
        if f.name == "steelyard_dns_queries"
        for s in f.samples
        if s.name.endswith("_total")
    }
    assert samples[("app.example.test.", "A", "NOERROR")] == 7
    assert samples[("other", "A", "NXDOMAIN")] == 1
    out = ctl(admin_port(lb), "dns")
    assert out.returncode == 0 and "app.example.test." in out.stdout and "127.0.0.2 127.0.0.3" in out.stdout, out
    listed = json.loads(ctl(admin_port(lb), "--json", "dns").stdout)
    assert listed[0]["records"][0]["A"] == ["127.0.0.2", "127.0.0.3"] and listed[0]["records"][0]["AAAA"] == ["::1"]


def test_a_tcp_client_that_never_reads_its_answers_is_no_longer_read(backends, balancer):
    """Queries over TCP whose answers are never read: once the answers waiting for that client
    pass the transport's high-water mark, the server stops reading its queries (its memory stays
    bounded) instead of answering into an ever-growing buffer."""
    _, lb, port = start(backends, balancer)
    query = dns.message.make_query("app.example.test.", "A").to_wire()
    framed = (len(query).to_bytes(2, "big") + query) * 2000
    before = lb.rss_kib()
    sent, blocked = 0, False
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        deadline = time.monotonic() + WAIT
        while sent < 200 * len(framed) and time.monotonic() < deadline:  # up to 400,000 queries
            try:
                sent += s.send(framed)
            except BlockingIOError:
                _, writable, _ = select.select([], [s], [], 3.0)
                if not writable:
                    blocked = True  # nobody reads our queries any more
                    break
        grown = lb.rss_kib() - before
    assert blocked, f"the server kept reading: {sent // len(query)} queries sent and never read"
    # (answering into an unbounded buffer, it grew by ~20 MiB before the loop's cap)
    assert grown < 8 * 1024, f"the balancer grew by {grown // 1024} MiB"
    assert short(port, "app.example.test", "A")  # and it still answers everyone else
