"""steelyard.dns: zone answers and the wire rules, without sockets (fake pools)."""

from __future__ import annotations

import random
import struct
from types import SimpleNamespace

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from steelyard.config import parse_config
from steelyard.core.model import Server
from steelyard.dns.server import DnsService
from steelyard.dns.zone import Zone

CONFIG = """
[[listener]]
name = "web"
bind = "127.0.0.1:0"
pool = "app"
[[pool]]
name = "app"
servers = [ { address = "127.0.0.1:1" } ]
[[dns]]
bind = "127.0.0.1:0"
zone = "Example.Test."
ttl = 60
[[dns.record]]
name = "app"
pool = "app"
policy = "%s"
%s
[[dns.record]]
name = "www"
type = "CNAME"
values = ["app"]
[[dns.record]]
name = "deep.sub"
type = "TXT"
values = ['"hi"']
[[dns.record]]
name = "big"
type = "TXT"
values = [%s]
"""


class FakePool:
    def __init__(self, servers):
        self.snapshot = SimpleNamespace(servers=tuple(servers))


def zone(policy="round_robin", extra="", usable=None, everyone=None, fallback=None):
    text = CONFIG % (policy, extra, ", ".join(f'"{"x" * 200} {i}"' for i in range(12)))
    if fallback:
        text = text.replace("ttl = 60\n", f'ttl = 60\nfallback = "{fallback}"\n')
    cfg = parse_config(text).dns[0]
    everyone = everyone or [Server(f"s{i}", f"10.0.0.{i}", 80, weight=i) for i in (1, 2, 3)]
    usable = everyone if usable is None else usable
    keeper = SimpleNamespace(health=SimpleNamespace(states=[SimpleNamespace(server=s) for s in everyone]))
    return Zone(cfg, {"app": FakePool(usable)}, {"app": keeper}, random.Random(5))


def ask(z, name, rdtype="A", **kw):
    return z.answer(dns.message.make_query(name, rdtype, **kw))


def addresses(resp):
    return [r.to_text() for rrset in resp.answer for r in rrset]


def test_round_robin_rotates_the_healthy_servers_and_answers_are_authoritative():
    z = zone()
    seen = [addresses(ask(z, "app.example.test.")) for _ in range(3)]
    assert seen == [
        ["10.0.0.2", "10.0.0.3", "10.0.0.1"],
        ["10.0.0.3", "10.0.0.1", "10.0.0.2"],
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    ]
    resp = ask(z, "APP.example.test.")  # names are case-insensitive
    assert resp.flags & dns.flags.AA and resp.rcode() == dns.rcode.NOERROR and resp.answer[0].ttl == 60


def test_policies_order_and_cut_the_answer():
    assert addresses(ask(zone("all_healthy"), "app.example.test.")) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert addresses(ask(zone("first_healthy"), "app.example.test.")) == ["10.0.0.1"]
    assert len(addresses(ask(zone("round_robin", "max_answers = 2"), "app.example.test."))) == 2
    z = zone("weighted")
    firsts = [addresses(ask(z, "app.example.test."))[0] for _ in range(3000)]
    shares = [firsts.count(f"10.0.0.{i}") / 3000 for i in (1, 2, 3)]  # weights 1, 2, 3: first place ∝ weight
    assert shares[0] < shares[1] < shares[2] and abs(shares[2] - 0.5) < 0.05
    servers = [Server(f"s{i}", f"10.0.0.{i}", 80) for i in (1, 2)]
    servers[0].load.active = 5
    z = zone("p2c", everyone=servers)
    assert {tuple(addresses(ask(z, "app.example.test."))) for _ in range(20)} == {("10.0.0.2",)}


def test_only_usable_servers_are_answered_and_the_fallback_decides_when_none_is():
    everyone = [Server(f"s{i}", f"10.0.0.{i}", 80) for i in (1, 2, 3)]
    assert addresses(ask(zone("all_healthy", usable=everyone[1:], everyone=everyone), "app.example.test.")) == [
        "10.0.0.2",
        "10.0.0.3",
    ]
    assert addresses(ask(zone("all_healthy", usable=[], everyone=everyone), "app.example.test.")) == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
    ]  # fallback "all"
    resp = ask(zone("all_healthy", usable=[], everyone=everyone, fallback="servfail"), "app.example.test.")
    assert resp.rcode() == dns.rcode.SERVFAIL and not resp.answer


def test_aaaa_comes_from_ipv6_servers_and_a_name_without_that_type_is_nodata():
    servers = [Server("v4", "10.0.0.1", 80), Server("v6", "::1", 80), Server("named", "backend.local", 80)]
    z = zone("all_healthy", everyone=servers)
    assert addresses(ask(z, "app.example.test.", "AAAA")) == ["::1"]
    assert addresses(ask(z, "app.example.test.", "A")) == ["10.0.0.1"]
    nodata = ask(z, "app.example.test.", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_nxdomain_nodata_for_empty_non_terminals_refused_outside_the_zone():
    z = zone()
    nx = ask(z, "nope.example.test.")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    assert nx.authority[0].ttl == 5  # the negative TTL
    ent = ask(z, "sub.example.test.")  # only deep.sub exists below it
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer
    out = ask(z, "example.org.")
    assert out.rcode() == dns.rcode.REFUSED and not out.flags & dns.flags.AA
    chaos = z.answer(dns.message.make_query("app.example.test.", "TXT", rdclass="CH"))
    assert chaos.rcode() == dns.rcode.REFUSED


def test_apex_soa_ns_and_static_records():
    z = zone()
    assert (
        ask(z, "example.test.", "SOA")
        .answer[0][0]
        .to_text()
        .startswith("ns1.example.test. hostmaster.example.test. 1 ")
    )
    assert addresses(ask(z, "example.test.", "NS")) == ["ns1.example.test."]
    assert addresses(ask(z, "www.example.test.", "A")) == ["app.example.test."]  # the CNAME answers any type
    assert addresses(ask(z, "deep.sub.example.test.", "TXT")) == ['"hi"']


def test_the_query_id_flags_and_question_are_echoed_and_edns_is_answered_with_edns():
    service = DnsService(zone())
    q = dns.message.make_query("app.example.test.", "A", use_edns=0, payload=1400)
    q.id = 4242
    resp = dns.message.from_wire(service.respond(q.to_wire(), 512))
    assert resp.id == 4242 and resp.question == q.question and resp.flags & dns.flags.QR
    assert resp.flags & dns.flags.RD == q.flags & dns.flags.RD and resp.edns == 0


def test_an_answer_too_big_for_udp_is_truncated_and_whole_over_tcp():
    service = DnsService(zone())
    q = dns.message.make_query("big.example.test.", "TXT")
    small = dns.message.from_wire(service.respond(q.to_wire(), 512))
    assert small.flags & dns.flags.TC and not small.answer
    edns = dns.message.make_query("big.example.test.", "TXT", use_edns=0, payload=4096)
    assert not dns.message.from_wire(service.respond(edns.to_wire(), 512)).flags & dns.flags.TC
    whole = dns.message.from_wire(service.respond(q.to_wire(), None))
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 12


@pytest.mark.parametrize(
    "packet",
    [
        b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x03bad",  # truncated question
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 40,  # garbage name
    ],
)
def test_a_malformed_query_gets_formerr_with_its_id(packet):
    wire = DnsService(zone()).respond(packet, 512)
    assert wire[:2] == b"\x12\x34"
    flags = struct.unpack("!H", wire[2:4])[0]
    assert flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR


def test_short_packets_and_responses_are_dropped_and_other_opcodes_are_notimp():
    service = DnsService(zone())
    assert service.respond(b"\x00\x01\x02", 512) is None
    reply = dns.message.from_wire(service.respond(dns.message.make_query("app.example.test.", "A").to_wire(), 512))
    assert service.respond(reply.to_wire(), 512) is None  # a response is never answered
    notify = dns.message.make_query("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(service.respond(notify.to_wire(), 512)).rcode() == dns.rcode.NOTIMP
    assert service.stats[("app.example.test.", "A", "NOERROR")] == 1


# -- the answer cache (fastpath) --------------------------------------------------------------


def wire_query(name="app.example.test.", rdtype="A", qid=7, rd=True, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = qid
    if not rd:
        q.flags &= ~dns.flags.RD
    return q.to_wire()


def test_cached_answers_keep_rotating_and_carry_each_querys_id_and_rd_bit():
    z = zone()
    service = DnsService(z)
    uncached = zone()
    slow = [addresses(ask(uncached, "app.example.test.")) for _ in range(5)]  # what the zone itself answers
    got = []
    for i in range(5):
        resp = dns.message.from_wire(service.respond(wire_query(qid=100 + i, rd=bool(i % 2)), 512))
        assert resp.id == 100 + i and bool(resp.flags & dns.flags.RD) == bool(i % 2)
        got.append(addresses(resp))
    assert got == slow  # the same rotation, served from the cache after the first query
    assert len(service.cache) == 1
    assert service.stats[("app.example.test.", "A", "NOERROR")] == 5


def test_a_new_snapshot_rebuilds_the_cached_answer():
    servers = [Server(f"s{i}", f"10.0.0.{i}", 80) for i in (1, 2, 3)]
    z = zone("all_healthy", everyone=servers)
    service = DnsService(z)
    assert addresses(dns.message.from_wire(service.respond(wire_query(), 512))) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    z.pooled[dns.name.from_text("app.example.test.")].pool.snapshot = SimpleNamespace(servers=tuple(servers[1:]))
    assert addresses(dns.message.from_wire(service.respond(wire_query(), 512))) == ["10.0.0.2", "10.0.0.3"]


def test_random_policies_edns_options_and_odd_queries_are_not_cached():
    service = DnsService(zone("weighted"))
    service.respond(wire_query(), 512)
    assert service.cache == {}
    service = DnsService(zone())
    cookie = dns.message.make_query(
        "app.example.test.", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]
    )
    service.respond(cookie.to_wire(), 512)
    assert service.cache == {}
    service.respond(wire_query(use_edns=0, payload=1232), 512)  # EDNS without options: cached, apart from plain
    service.respond(wire_query(), 512)
    service.respond(wire_query(), None)  # TCP is a key of its own (no size limit)
    assert len(service.cache) == 3
    service.zone = zone()  # a reload: nothing of the old zone is kept
    assert service.cache == {}
