"""A throwaway certificate authority for TLS tests, made with the ``openssl`` command line:
one CA and leaf certificates (EC P-256, valid two days) for the names asked for."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class TestCA:
    __test__ = False  # (not a test class)

    def __init__(self, root: Path) -> None:
        if OPENSSL is None:
            pytest.skip("the openssl command line is not installed")
        self.root = root
        self.ca = root / "ca.pem"
        _run(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=steelyard test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            cwd=root,
        )

    def leaf(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) for DNS name ``name``, signed by this CA."""
        stem = name.replace("*", "star")
        (self.root / f"{stem}.ext").write_text(
            f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
        )
        _run(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{stem}.key",
            "-out",
            f"{stem}.csr",
            "-subj",
            f"/CN={name}",
            cwd=self.root,
        )
        _run(
            "x509",
            "-req",
            "-in",
            f"{stem}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{stem}.pem",
            "-days",
            "2",
            "-extfile",
            f"{stem}.ext",
            cwd=self.root,
        )
        return self.root / f"{stem}.pem", self.root / f"{stem}.key"


class TlsServer:
    """A threaded HTTPS server on 127.0.0.1 that answers every request with its ``name`` as
    the body and records the SNI names its clients sent."""

    def __init__(self, name: str, cert: Path, key: Path) -> None:
        self.name = name
        self.sni: list[str | None] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = lambda sock, sni, ctx: self.sni.append(sni)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                buf = b""
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = s.recv(65536)
                        if not data:
                            return
                        buf += data
                    _, _, buf = buf.partition(b"\r\n\r\n")
                    body = self.name.encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.sock.close()
