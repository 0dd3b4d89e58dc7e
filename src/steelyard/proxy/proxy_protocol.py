"""PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2), sent first on a
server connection so the server learns the client's address and the address it connected to.

Invariants:
- ``header(version, src, dst)`` takes the (host, port, ...) tuples a socket's
  ``getpeername()``/``getsockname()`` return, and never raises on an address it cannot
  describe: v1 says ``PROXY UNKNOWN``, v2 sends the PROXY command with the UNSPEC family
  and no address block (the receiver then uses the connection's own endpoints).
- Both addresses must be of one family; IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``,
  a dual-stack listener's IPv4 clients) are sent as IPv4, as the client really is.
- v1 is one ASCII line, at most 107 bytes; v2 is the 12-byte signature, the
  version/command byte 0x21 (version 2, PROXY), the family/protocol byte (0x11 TCP over
  IPv4, 0x21 TCP over IPv6), the address block's length in network byte order, then the
  addresses and ports in network byte order.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PROXY = 0x21  # version 2 (high nibble), command PROXY (low nibble)
TCP4, TCP6, UNSPEC = 0x11, 0x21, 0x00
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"
V2_UNKNOWN = V2_SIGNATURE + bytes((V2_PROXY, UNSPEC)) + b"\x00\x00"


def _ip(addr: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None  # a Unix socket path, or nothing
    try:
        ip = ipaddress.ip_address(addr[0].split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except (ValueError, AttributeError):
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def header(version: str, src: Any, dst: Any) -> bytes:
    """The PROXY header (``version`` "v1" or "v2") for a client ``src`` that connected to ``dst``."""
    sip, dip = _ip(src), _ip(dst)
    known = sip is not None and dip is not None and sip.version == dip.version
    if version == "v1":
        if not known:
            return V1_UNKNOWN
        assert sip is not None  # (``known``)
        line = b"TCP4" if sip.version == 4 else b"TCP6"
        return b"PROXY %b %b %b %d %d\r\n" % (line, str(sip).encode(), str(dip).encode(), src[1], dst[1])
    if version != "v2":
        raise ValueError(f"unknown PROXY protocol version {version!r}")
    if not known:
        return V2_UNKNOWN
    assert sip is not None and dip is not None  # (``known``)
    body = sip.packed + dip.packed + struct.pack("!HH", src[1], dst[1])
    family = TCP4 if sip.version == 4 else TCP6
    return V2_SIGNATURE + struct.pack("!BBH", V2_PROXY, family, len(body)) + body


def parse(data: bytes) -> tuple[tuple[str, int] | None, tuple[str, int] | None, int]:
    """Read a v1 or v2 header at the start of ``data``: (source, destination, header length).

    For tests and test servers; addresses are None for UNKNOWN/UNSPEC. ``ValueError`` when
    ``data`` does not start with a complete, well-formed header.
    """
    if data.startswith(V2_SIGNATURE):
        if len(data) < 16:
            raise ValueError("truncated PROXY v2 header")
        ver_cmd, family, length = struct.unpack("!BBH", data[12:16])
        if ver_cmd >> 4 != 2 or len(data) < 16 + length:
            raise ValueError("bad or truncated PROXY v2 header")
        block = data[16 : 16 + length]
        if family == TCP4 and length >= 12:
            src = (str(ipaddress.IPv4Address(block[0:4])), struct.unpack("!H", block[8:10])[0])
            dst = (str(ipaddress.IPv4Address(block[4:8])), struct.unpack("!H", block[10:12])[0])
            return src, dst, 16 + length
        if family == TCP6 and length >= 36:
            src = (str(ipaddress.IPv6Address(block[0:16])), struct.unpack("!H", block[32:34])[0])
            dst = (str(ipaddress.IPv6Address(block[16:32])), struct.unpack("!H", block[34:36])[0])
            return src, dst, 16 + length
        return None, None, 16 + length
    if data.startswith(b"PROXY "):
        end = data.find(b"\r\n", 0, 108)
        if end < 0:
            raise ValueError("PROXY v1 line without CRLF within 107 bytes")
        parts = data[:end].decode("ascii").split(" ")
        if parts[1] == "UNKNOWN":
            return None, None, end + 2
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError(f"malformed PROXY v1 line {data[:end]!r}")
        return (parts[2], int(parts[4])), (parts[3], int(parts[5])), end + 2
    raise ValueError("no PROXY header")
