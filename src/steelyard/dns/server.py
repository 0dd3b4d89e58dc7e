"""The DNS listener: UDP and TCP on one address, answering from a ``Zone``.

Rules:
- A packet that does not parse is answered FORMERR when its 12-byte header is readable and it
  is a query (QR clear), echoing its ID; otherwise it is dropped. A response (QR set) is never
  answered (no reflection loops). Opcodes other than QUERY get NOTIMP; a question count other
  than one gets FORMERR.
- UDP answers fit the client's EDNS0 payload size (512 bytes without EDNS, at most 4096);
  an answer that does not fit goes out without records and with TC set, so the client asks
  again over TCP, where messages carry a two-byte length and may be up to 65535 bytes.
- TCP connections take any number of queries, each answered in order; one that sends nothing
  for ``TCP_IDLE`` seconds, or a malformed length, is closed (answers it left unread dropped).
- Nothing a client sends can raise out of the protocol callbacks: each query is answered or
  dropped on its own, and counted in ``stats`` (name, type, rcode) for /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from .fastpath import MAX_ENTRIES, Entry, patch, quick_key
from .zone import Zone

log = logging.getLogger("steelyard.dns")
TCP_IDLE = 10.0
MAX_UDP = 4096


def _formerr(data: bytes) -> bytes | None:
    """A bare FORMERR for an unparsable query whose header can be read; None: drop it."""
    if len(data) < 12 or data[2] & 0x80:  # too short, or a response
        return None
    flags = 0x8000 | (data[2] & 0x78) << 8 | dns.rcode.FORMERR  # QR, the same opcode
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


class DnsService:
    """What both transports share: parse, answer, size, count (and the cache in ``fastpath``)."""

    def __init__(self, zone: Zone) -> None:
        self.stats: Counter[tuple[str, str, str]] = Counter()  # (record name or "other", type, rcode)
        self.zone = zone

    @property
    def zone(self) -> Zone:
        return self._zone

    @zone.setter
    def zone(self, zone: Zone) -> None:  # (a reload: nothing cached from the old zone may be served)
        self._zone = zone
        self.cache: dict[bytes, Entry] = {}

    def respond(self, data: bytes, limit: int | None) -> bytes | None:
        """The wire answer to ``data``; ``limit``: the UDP size cap (None over TCP)."""
        key = quick_key(data, limit is None)
        if key is not None:
            entry = self.cache.get(key)
            if entry is not None and (entry.state is None or entry.state is self._state_of(entry)):
                wires = entry.wires
                wire = wires[entry.turn % len(wires)]
                entry.turn += 1
                self.stats[entry.stat] += 1
                return patch(wire, data)
        return self._slow(data, limit, key)

    def _state_of(self, entry: Entry) -> Any:
        record = self.zone.pooled.get(entry.name)
        return record.state() if record is not None else None

    def _slow(self, data: bytes, limit: int | None, key: bytes | None) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # every parse error (dnspython raises several kinds) is the client's
            self.stats[("other", "-", "FORMERR")] += 1
            return _formerr(data)
        if query.flags & dns.flags.QR:
            return None
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            resp = dns.message.make_response(query)
            resp.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return self._wire(resp, query, limit, "-", "-")
        q = query.question[0]
        name = q.name.to_text().lower()
        known = name if q.name in self.zone.pooled or name in self.zone.static_names else "other"
        rdtype = dns.rdatatype.to_text(q.rdtype)
        try:
            kept = self.zone.variants(query) if key is not None else None
            resp = kept[0][0] if kept is not None else self.zone.answer(query)
        except Exception:  # a bug must cost this query, not the listener
            log.exception("DNS answer failed for %s", q)
            resp, kept = dns.message.make_response(query), None
            resp.set_rcode(dns.rcode.SERVFAIL)
        wire = self._wire(resp, query, limit, known, rdtype)
        if kept is not None:
            if len(self.cache) >= MAX_ENTRIES:
                self.cache.clear()
            wires = [wire] + [self._render(r, query, limit) for r in kept[0][1:]]
            entry = Entry(wires, (known, rdtype, dns.rcode.to_text(resp.rcode())), q.name)
            if kept[1]:
                entry.state = self._state_of(entry)
            self.cache[key] = entry  # type: ignore[index]
        return wire

    def _wire(
        self, resp: dns.message.Message, query: dns.message.Message, limit: int | None, name: str, rdtype: str
    ) -> bytes:
        self.stats[(name, rdtype, dns.rcode.to_text(resp.rcode()))] += 1
        return self._render(resp, query, limit)

    def _render(self, resp: dns.message.Message, query: dns.message.Message, limit: int | None) -> bytes:
        if limit is None:
            return resp.to_wire(max_size=65535, want_shuffle=False)  # (the policy chose the order)
        if query.edns >= 0:
            limit = max(512, min(query.payload, MAX_UDP))
        try:
            return resp.to_wire(max_size=limit, want_shuffle=False)
        except dns.exception.TooBig:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC | (resp.flags & dns.flags.AA)
            short.set_rcode(resp.rcode())
            return short.to_wire(max_size=limit)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: DnsService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            wire = self.service.respond(data, 512)
        except Exception:
            log.exception("DNS: dropped a datagram from %s", addr)
            return
        if wire is not None:
            self.transport.sendto(wire, addr)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        pass  # (an ICMP error for an earlier reply: nothing to do)


class _Tcp(asyncio.Protocol):
    def __init__(self, service: DnsService, loop: asyncio.AbstractEventLoop) -> None:
        self.service, self.loop = service, loop
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(TCP_IDLE, self._idle)

    def _idle(self) -> None:
        """Nothing came for ``TCP_IDLE``: close; answers still waiting for a client that reads
        nothing are dropped (a close would wait for it to read them, holding the connection)."""
        transport: asyncio.Transport = self.transport  # type: ignore[assignment]
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        self._arm()
        at, end = 0, len(buf)
        while end - at >= 2:  # (an offset walks the read: slicing the rest per message is quadratic)
            (size,) = struct.unpack_from("!H", buf, at)
            if size < 12:
                self.transport.close()  # type: ignore[union-attr]  # not a DNS message length
                return
            if end - at < 2 + size:
                break
            message = buf[at + 2 : at + 2 + size]
            at += 2 + size
            try:
                wire = self.service.respond(message, None)
            except Exception:
                log.exception("DNS: dropped a TCP query")
                wire = None
            if wire is not None:
                self.transport.write(struct.pack("!H", len(wire)) + wire)  # type: ignore[union-attr]
        self.buf = buf[at:]

    def pause_writing(self) -> None:
        """A client that sends queries and does not read the answers: stop reading its queries
        (the answers waiting for it stay within the transport's high-water mark)."""
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


class DnsListener:
    def __init__(self, cfg: Any, zone: Zone, host: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg, self.host, self.port, self.loop = cfg, host, port, loop
        self.service = DnsService(zone)
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        # port 0: the UDP side picks a free port and TCP takes the same number, which another TCP
        # socket may hold already; then both try again on another port (a few times at most)
        for attempt in range(1 if self.port else 8):
            self.udp, _ = await self.loop.create_datagram_endpoint(
                lambda: _Udp(self.service), local_addr=(self.host, self.port)
            )
            port = self.udp.get_extra_info("sockname")[1]
            if not self.cfg.tcp:
                self.port = port
                return
            try:
                self.tcp = await self.loop.create_server(
                    lambda: _Tcp(self.service, self.loop), self.host, port, reuse_address=True
                )
                self.port = port
                return
            except OSError:
                self.udp.close()
                if self.port or attempt == 7:
                    raise

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()
