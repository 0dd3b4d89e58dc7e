"""``steelyard health``: does the balancer of this configuration serve, on this host?

keepalived runs it as the track script of the floating address, and an operator or a
monitoring agent can run it too. It makes real requests, not port probes (the kernel accepts
connections on a listening socket even while the process behind it is stuck):

- the admin API (when ``[admin]`` is configured): ``GET /api/v1/status`` must answer 200 with
  JSON, which proves the control process's event loop runs; the answer's servers are counted
  for the message (how many are up), never judged (with every server down on every node, a
  failing script would leave the floating address nowhere);
- every http listener: ``GET /`` (over TLS when the listener terminates TLS, certificate not
  verified: this is the local host) must get an HTTP status line; any status counts, since the
  balancer answered;
- every tcp listener: a connection (there is no protocol to speak); udp listeners are skipped.

Addresses bound to every interface are checked on the loopback address. ``serving`` returns
(ok, one line saying what was seen or what failed).
"""

from __future__ import annotations

import re
import socket
from typing import Any

_LOCAL = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


class _Failed(Exception):
    """An answer came, but not the one a serving balancer gives (the message says which)."""


def _local(host: str) -> str:
    return _LOCAL.get(host, host)


def _admin(admin: Any, timeout: float) -> str:
    """``GET /api/v1/status`` on the admin API: the summary of its servers; else ``_Failed``/``OSError``."""
    import http.client  # (here, not at the top: keepalived runs this every second; start-up counts)
    import json

    conn = http.client.HTTPConnection(_local(admin.host), admin.port, timeout=timeout)
    try:
        conn.request("GET", "/api/v1/status", headers={"User-Agent": "steelyard-health"})
        response = conn.getresponse()
        body = response.read()
    except (http.client.HTTPException, ValueError) as exc:
        raise _Failed(f"admin API on {admin.bind}: no HTTP answer ({exc.__class__.__name__})") from None
    finally:
        conn.close()
    if response.status != 200:
        raise _Failed(f"admin API on {admin.bind}: HTTP {response.status} for /api/v1/status")
    try:
        servers = json.loads(body).get("servers", [])
    except (ValueError, AttributeError):
        raise _Failed(f"admin API on {admin.bind}: /api/v1/status is not JSON") from None
    up = sum(1 for s in servers if isinstance(s, dict) and s.get("status") in ("up", "ready"))
    return f"admin 200 ({up} of {len(servers)} servers up)"


def _http(lc: Any, host: str, timeout: float) -> str:
    """One ``GET /`` through http listener ``lc``: its status; else ``_Failed``/``OSError``."""
    with socket.create_connection((host, lc.port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if lc.tls is not None:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # (our own listener, locally)
            sock = context.wrap_socket(raw)
        sock.settimeout(timeout)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: steelyard-health\r\nUser-Agent: steelyard-health\r\nConnection: close\r\n\r\n"
        )
        head = b""
        while b"\r\n" not in head and len(head) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            head += chunk
    match = _STATUS_LINE.match(head)
    if match is None:
        raise _Failed(f"listener {lc.name} on {host}:{lc.port}: no HTTP answer to GET /")
    return f"{lc.name} {match[1].decode()}"


def _what(exc: OSError, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return exc.strerror or str(exc)


def serving(config: Any, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether the balancer of ``config`` serves on this host (see the module docstring)."""
    seen: list[str] = []
    admin = config.admin
    if admin is not None and admin.port:
        try:
            seen.append(_admin(admin, timeout))
        except _Failed as exc:
            return False, str(exc)
        except OSError as exc:
            return False, f"admin API on {admin.bind}: {_what(exc, timeout)}"
    for lc in config.listeners:
        if lc.mode == "udp" or lc.port == 0:
            continue
        host = _local(lc.host)
        try:
            if lc.mode == "http":
                seen.append(_http(lc, host, timeout))
            else:
                socket.create_connection((host, lc.port), timeout=timeout).close()
                seen.append(f"{lc.name} accepts")
        except _Failed as exc:
            return False, str(exc)
        except OSError as exc:  # (ssl.SSLError is one)
            return False, f"listener {lc.name} on {host}:{lc.port}: {_what(exc, timeout)}"
    return True, "serving: " + ", ".join(seen)
