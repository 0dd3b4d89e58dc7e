"""One zone's data and the answers it gives (dnspython objects; no sockets).

Rules (RFC 1034 §4.3.2, RFC 2308):
- A name outside the zone is REFUSED (we are not a resolver); class other than IN too.
- A name in the zone with records, but none of the asked type, is NODATA: NOERROR, no answer,
  the SOA in the authority section. A name with no records anywhere at or below it is
  NXDOMAIN, with the SOA. (A name that only has names below it — an empty non-terminal — is
  NODATA, not NXDOMAIN.)
- Every answer from the zone is authoritative (AA).
- A pool record answers with the pool's usable servers (its published snapshot: health checks,
  ejection, drain, backups and panic already applied), ordered by the record's policy and cut
  to ``max_answers``; A from IPv4 servers, AAAA from IPv6 ones. When no server is usable the
  zone's ``fallback`` decides: every configured server, or SERVFAIL.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .names import absolute

A, AAAA, SOA, NS, ANY = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.ANY)
IN = dns.rdataclass.IN


class PoolRecord:
    """A name answered from a pool. ``servers()`` gives the usable ones, ``everyone()`` all."""

    def __init__(self, cfg: Any, ttl: int, pool: Any, everyone: Callable[[], list], rng: random.Random) -> None:
        self.policy, self.max_answers, self.ttl = cfg.policy, cfg.max_answers, ttl
        self.pool, self.everyone, self.rng = pool, everyone, rng
        self.turn = 0
        self.pool_name = cfg.pool

    def servers(self) -> tuple:
        return self.pool.snapshot.servers

    def state(self) -> Any:
        """Changes whenever the pool publishes (health, drain, runtime changes): the snapshot."""
        return self.pool.snapshot

    def addresses(self, rdtype: int, fallback: str) -> list[str] | None:
        """The addresses to answer with, in order; None means SERVFAIL (no server, no fallback)."""
        servers = [s for s in self.servers() if _family(s.host) == rdtype]
        if not servers:
            if fallback == "servfail" and any(_family(s.host) == rdtype for s in self.everyone()):
                return None
            servers = [s for s in self.everyone() if _family(s.host) == rdtype]
        ordered = self._order(servers)
        if self.max_answers is not None:
            ordered = ordered[: self.max_answers]
        return [s.host for s in ordered]

    def _order(self, servers: list) -> list:
        if not servers:
            return servers
        policy = self.policy
        if policy == "first_healthy":
            return servers[:1]
        if policy == "round_robin":
            self.turn = (self.turn + 1) % len(servers)
            return servers[self.turn :] + servers[: self.turn]
        if policy == "weighted":  # weighted draw without replacement (Efraimidis–Spirakis keys)
            keyed = [(self.rng.random() ** (1.0 / s.weight) if s.weight > 0 else 0.0, i) for i, s in enumerate(servers)]
            return [servers[i] for _, i in sorted(keyed, reverse=True)]
        if policy == "p2c":
            if len(servers) == 1:
                return servers
            a, b = self.rng.sample(servers, 2)
            return [a if a.load.active <= b.load.active else b]
        return list(servers)  # all_healthy: in configured order


def _family(host: str) -> int:
    try:
        return A if ipaddress.ip_address(host).version == 4 else AAAA
    except ValueError:
        return -1  # a host name: not answerable as an address


class Zone:
    def __init__(self, cfg: Any, pools: dict[str, Any], keepers: dict[str, Any], rng: random.Random) -> None:
        self.cfg = cfg
        self.origin = dns.name.from_text(cfg.origin)
        ns_names = [absolute(n, cfg.origin) for n in cfg.ns] or [f"ns1.{cfg.origin}"]
        rname = absolute(cfg.hostmaster, cfg.origin) if cfg.hostmaster else f"hostmaster.{cfg.origin}"
        soa = dns.rdata.from_text(IN, SOA, f"{ns_names[0]} {rname} {cfg.serial} 3600 600 86400 {cfg.negative_ttl}")
        self.soa = dns.rrset.from_rdata(self.origin, cfg.negative_ttl, soa)
        self.static: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {
            (self.origin, SOA): dns.rrset.from_rdata(self.origin, cfg.ttl, soa),
            (self.origin, NS): dns.rrset.from_text_list(self.origin, cfg.ttl, IN, NS, ns_names),
        }
        self.pooled: dict[dns.name.Name, PoolRecord] = {}
        for r in cfg.records:
            name = dns.name.from_text(absolute(r.name, cfg.origin))
            ttl = cfg.ttl if r.ttl is None else r.ttl
            if r.pool is not None:
                keeper = keepers[r.pool]
                everyone = lambda k=keeper: [st.server for st in k.health.states]  # noqa: E731
                self.pooled[name] = PoolRecord(r, ttl, pools[r.pool], everyone, rng)
            else:
                kind = dns.rdatatype.from_text(r.type)
                values = [
                    v if r.type not in ("CNAME", "NS", "MX") else _absolute_target(v, cfg.origin) for v in r.values
                ]
                self.static[(name, kind)] = dns.rrset.from_text_list(name, ttl, IN, kind, values)
        self.static_names = {n.to_text().lower() for n, _ in self.static}
        names = {n for n, _ in self.static} | set(self.pooled)
        self.existing = set(names)
        for n in names:  # empty non-terminals exist too
            while n != self.origin and len(n) > len(self.origin):
                n = n.parent()
                self.existing.add(n)

    def view(self) -> list[dict]:
        """What each pool record would answer now (without turning any rotation), for people."""
        rows = []
        for name, rec in self.pooled.items():
            usable = rec.servers()
            rows.append(
                {
                    "name": name.to_text(),
                    "pool": rec.pool_name,
                    "policy": rec.policy,
                    "ttl": rec.ttl,
                    "A": [s.host for s in usable if _family(s.host) == A],
                    "AAAA": [s.host for s in usable if _family(s.host) == AAAA],
                    "fallback": self.cfg.fallback if not usable else None,
                }
            )
        for (name, kind), rrset in self.static.items():
            if name != self.origin:
                rows.append(
                    {
                        "name": name.to_text(),
                        "type": dns.rdatatype.to_text(kind),
                        "ttl": rrset.ttl,
                        "values": [r.to_text() for r in rrset],
                    }
                )
        return rows

    def variants(self, query: dns.message.Message) -> tuple[list[dns.message.Message], bool] | None:
        """Every answer this query can get until the pool publishes other servers, in turn, and
        whether it depends on the pool at all (False: it never changes); None when the answer is
        drawn at random (weighted, p2c) and cannot be kept."""
        q = query.question[0]
        record = self.pooled.get(q.name) if q.rdclass == IN else None
        if record is None or q.rdtype not in (A, AAAA, ANY):
            return [self.answer(query)], False
        if record.policy in ("weighted", "p2c"):
            return None
        servers = record.servers()
        turns = max(1, len(servers)) if record.policy == "round_robin" else 1
        return [self.answer(query) for _ in range(turns)], True  # (each answer turns the rotation once)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to a parsed QUERY with exactly one question."""
        q = query.question[0]
        resp = dns.message.make_response(query, our_payload=1232)
        if q.rdclass != IN or not q.name.is_subdomain(self.origin):
            resp.set_rcode(dns.rcode.REFUSED)
            return resp
        resp.flags |= dns.flags.AA
        name, rdtype = q.name, q.rdtype
        record = self.pooled.get(name)
        if record is not None and rdtype in (A, AAAA, ANY):
            for kind in (A, AAAA) if rdtype == ANY else (rdtype,):
                addresses = record.addresses(kind, self.cfg.fallback)
                if addresses is None:
                    resp.set_rcode(dns.rcode.SERVFAIL)
                    return resp
                if addresses:
                    resp.answer.append(dns.rrset.from_text_list(name, record.ttl, IN, kind, addresses))
        else:
            for (rname, kind), rrset in self.static.items():
                if rname == name and (kind == rdtype or rdtype == ANY or kind == dns.rdatatype.CNAME):
                    resp.answer.append(rrset)
        if not resp.answer:
            if name not in self.existing:
                resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(self.soa)
        return resp


def _absolute_target(value: str, origin: str) -> str:
    parts = value.split()
    parts[-1] = absolute(parts[-1], origin)
    return " ".join(parts)
