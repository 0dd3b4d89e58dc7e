"""Helpers for the L4 integration tests: configs, a tiny DNS server, socket reading with bounds."""

from __future__ import annotations

import socket
import struct
import threading
import time

WAIT = 10.0


def l4_config(mode: str, addresses: list[str], listener: str = "", pool: str = "", grace: str = "5s") -> str:
    servers = ", ".join(f'{{ address = "{a}" }}' for a in addresses)
    return f"""
shutdown_grace = "{grace}"

[[listener]]
name = "edge"
bind = "127.0.0.1:0"
mode = "{mode}"
pool = "app"
{listener}

[[pool]]
name = "app"
servers = [ {servers} ]
{pool}
"""


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recv_exactly(sock: socket.socket, n: int, timeout: float = WAIT) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return buf


def recv_line(sock: socket.socket, timeout: float = WAIT) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        data = sock.recv(1)
        if not data:
            raise EOFError(f"EOF after {buf!r}")
        buf += data
    return buf


def recv_until_eof(sock: socket.socket, timeout: float = WAIT) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def dns_answer(query: bytes, ip: str) -> bytes:
    """A response to a one-question query: the question echoed, one A record with ``ip`` (TTL 0)."""
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12 : end + 5]  # name, its terminating 0, QTYPE, QCLASS
    head = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)  # response, RD+RA, NOERROR
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(ip)  # name -> offset 12
    return head + question + answer


class DnsServer:
    """A UDP server answering every query with one A record ``ip``; remembers the source ports."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.sources: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            with self.lock:
                self.sources.append(addr)
            try:
                self.sock.sendto(dns_answer(data, self.ip) if len(data) > 12 else data, addr)
            except (OSError, IndexError, struct.error):
                pass

    def close(self) -> None:
        self.sock.close()


def udp_port_open(port: int) -> bool:
    """Whether some UDP socket on this machine is bound to ``port`` (from /proc/net/udp{,6})."""
    hexport = f":{port:04X}"
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        with open(path) as fh:
            next(fh)
            if any(line.split()[1].endswith(hexport) for line in fh):
                return True
    return False


def wait_until(cond, timeout: float = WAIT, every: float = 0.02) -> bool:
    """Poll ``cond`` (a cheap check of state, never of elapsed time) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()
