"""A throwaway certificate authority for TLS tests, made with the ``openssl`` command line:
one CA and leaf certificates (EC P-256, valid two days) for the names asked for."""

from __future__ import annotations

import shutil
import subprocess
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
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=steelyard test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=root)

    def leaf(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) for DNS name ``name``, signed by this CA."""
        stem = name.replace("*", "star")
        (self.root / f"{stem}.ext").write_text(
            f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={name}", cwd=self.root)
        _run("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{stem}.pem", "-days", "2", "-extfile", f"{stem}.ext", cwd=self.root)
        return self.root / f"{stem}.pem", self.root / f"{stem}.key"
