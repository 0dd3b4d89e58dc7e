"""Byte-level HTTP/1.1 client helpers for tests that need to see the wire (pipelining, framing)."""

from __future__ import annotations

import http.client
import socket


class _Unclosable:
    """The connection's buffered stream, which an ``HTTPResponse`` may not close."""

    def __init__(self, fp) -> None:
        self._fp = fp

    def __getattr__(self, name):
        return getattr(self._fp, name)

    def close(self) -> None:
        pass


class _OneFile:
    """Lets several ``HTTPResponse`` objects read one after another from the same buffered stream."""

    def __init__(self, fp) -> None:
        self.fp = _Unclosable(fp)

    def makefile(self, *args, **kwargs):
        return self.fp


class RawConnection:
    def __init__(self, port: int, timeout: float = 10.0, source: str | None = None) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.fp = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """Read one complete response; header names lower-cased."""
        resp = http.client.HTTPResponse(_OneFile(self.fp), method=method)  # type: ignore[arg-type]
        resp.begin()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, body

    def is_closed_by_peer(self) -> bool:
        """True when the server closed the connection (EOF after whatever was already read)."""
        return self.fp.read() == b""

    def close(self) -> None:
        self.fp.close()
        self.sock.close()

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get(path: str, host: str = "test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
