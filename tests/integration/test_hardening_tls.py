"""TLS termination: two host names on one port, each gets its own certificate (curl verifies
it against the test CA); a plain-HTTP request on the TLS port is closed without an answer;
the balancer's descriptors return to their starting count."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from .conftest import pool_config
from .hardening import fd_count, wait_fds
from .inline import WAIT
from .rawhttp import RawConnection
from .testca import TestCA, TlsServer

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def tls_proxy(tmp_path, backends, balancer):
    ca = TestCA(tmp_path)
    (a_cert, a_key), (b_cert, b_key) = ca.leaf("a.test"), ca.leaf("b.test")
    (backend,) = backends(["s1"])
    bal = balancer(f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [listener.tls]
        cert = "{a_cert}"
        key = "{a_key}"

        [[listener.tls.certificate]]
        cert = "{b_cert}"
        key = "{b_key}"
        names = ["b.test"]

        [[pool]]
        name = "app"
        max_idle = 0  # (no kept-alive server connection: the descriptor count is the clients' alone)
        servers = [ {{ address = "{backend.address}" }} ]
    """)
    return ca, bal


def curl(ca: TestCA, name: str, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            str(WAIT),
            "--cacert",
            str(ca.ca),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            "-w",
            "\n%{http_code} %{ssl_verify_result}",
            f"https://{name}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT + 5,
    )


def peer_name(ca: TestCA, name: str, port: int) -> str:
    ctx = ssl.create_default_context(cafile=str(ca.ca))
    ctx.check_hostname = False  # see which certificate comes, whatever the name asked
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            assert s.selected_alpn_protocol() in (None, "http/1.1")
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def test_two_names_on_one_port_each_get_their_certificate(tls_proxy):
    ca, bal = tls_proxy
    base = fd_count(bal.pid())
    for name in ("a.test", "b.test"):
        r = curl(ca, name, bal.port)
        assert r.returncode == 0, r.stderr
        assert r.stdout.rstrip().endswith("200 0")
    assert peer_name(ca, "a.test", bal.port) == "a.test"
    assert peer_name(ca, "b.test", bal.port) == "b.test"
    assert peer_name(ca, "unknown.test", bal.port) == "a.test"  # the default certificate
    assert wait_fds(bal.pid(), base) <= base


def test_https_request_carries_forwarded_proto_https(tls_proxy):
    ca, bal = tls_proxy
    r = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            str(WAIT),
            "--cacert",
            str(ca.ca),
            "--resolve",
            f"a.test:{bal.port}:127.0.0.1",
            "-D",
            "-",
            f"https://a.test:{bal.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT + 5,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 200")


def test_plain_http_on_the_tls_port_is_closed_cleanly(tls_proxy):
    ca, bal = tls_proxy
    base = fd_count(bal.pid())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", bal.port), timeout=WAIT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(65536):
                    got += chunk
            except ConnectionResetError:
                pass
            assert b"HTTP/1.1 200" not in got
    r = curl(ca, "a.test", bal.port)  # still serving
    assert r.returncode == 0, r.stderr
    assert wait_fds(bal.pid(), base) <= base
    assert bal.proc.poll() is None


def test_tls_to_servers_verifies_their_certificate(tmp_path, balancer):
    ca = TestCA(tmp_path)
    cert, key = ca.leaf("backend.test")
    backend = TlsServer("tls-backend", cert, key)
    try:
        pool = f"""
            servers = [ {{ address = "127.0.0.1:{backend.port}" }} ]
            tls = true
            tls_ca = "{ca.ca}"
            tls_server_name = "backend.test"
        """
        bal = balancer(pool_config("", pool))
        with RawConnection(bal.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, _, body = c.response()
        assert (status, body) == (200, b"tls-backend")
        assert backend.sni == ["backend.test"]
        # the wrong name fails verification: no request goes out, the client gets a 502
        bad = balancer(pool_config("", pool.replace('"backend.test"', '"other.test"')), name="bad.toml")
        with RawConnection(bad.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert c.response()[0] == 502
    finally:
        backend.close()


def test_a_reload_reads_certificates_again_without_rebinding(tls_proxy, tmp_path):
    import signal

    ca, bal = tls_proxy
    config = tmp_path / "steelyard.toml"
    assert peer_name(ca, "c.test", bal.port) == "a.test"  # no certificate for c.test yet: the default
    c_cert, c_key = ca.leaf("c.test")
    text = config.read_text()
    config.write_text(
        text.replace(
            "[[pool]]",
            f"""[[listener.tls.certificate]]
        cert = "{c_cert}"
        key = "{c_key}"
        names = ["c.test"]

        [[pool]]""",
            1,
        )
    )
    bal.proc.send_signal(signal.SIGHUP)
    bal.wait_for("steelyard: reloaded")
    assert peer_name(ca, "c.test", bal.port) == "c.test"  # same port, same socket, the new certificate
    assert peer_name(ca, "b.test", bal.port) == "b.test"
    assert curl(ca, "c.test", bal.port).stdout.rstrip().endswith("200 0")


def test_tcp_sni_routing_passes_tls_through_to_the_named_backend(tmp_path, balancer):
    ca = TestCA(tmp_path)
    a = TlsServer("backend-a", *ca.leaf("a.test"))
    b = TlsServer("backend-b", *ca.leaf("b.test"))
    bal = balancer(f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "edge"
        mode = "tcp"
        bind = "127.0.0.1:0"
        pool = "a"
        sni = [ {{ name = "b.test", pool = "b" }}, {{ name = "*.c.test", pool = "b" }} ]

        [[pool]]
        name = "a"
        servers = [ {{ address = "127.0.0.1:{a.port}" }} ]

        [[pool]]
        name = "b"
        servers = [ {{ address = "127.0.0.1:{b.port}" }} ]
    """)
    try:
        for name, body in (("a.test", "backend-a"), ("b.test", "backend-b")):
            r = curl(ca, name, bal.port)  # curl checks the backend's own certificate: not decrypted on the way
            assert r.returncode == 0 and r.stdout.startswith(body) and r.stdout.rstrip().endswith("200 0"), r
        assert b.sni == ["b.test"] and a.sni == ["a.test"]
        assert peer_name(ca, "x.c.test", bal.port) == "b.test"  # the wildcard route; b's certificate comes back
        assert peer_name(ca, "other.test", bal.port) == "a.test"  # no route: the listener's pool
    finally:
        a.close()
        b.close()


def test_a_sticky_cookie_set_over_tls_is_secure(tmp_path, backends, balancer):
    ca = TestCA(tmp_path)
    cert, key = ca.leaf("a.test")
    (backend,) = backends(["s1"])
    bal = balancer(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"

        [listener.tls]
        cert = "{cert}"
        key = "{key}"

        [[pool]]
        name = "app"
        servers = [ {{ address = "{backend.address}" }} ]

        [pool.sticky]
        mode = "cookie"
    """)
    r = subprocess.run(
        [
            "curl",
            "-sS",
            "-D-",
            "-o",
            "/dev/null",
            "--max-time",
            str(WAIT),
            "--cacert",
            str(ca.ca),
            "--resolve",
            f"a.test:{bal.port}:127.0.0.1",
            f"https://a.test:{bal.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT + 5,
    )
    cookie = next(line for line in r.stdout.splitlines() if line.lower().startswith("set-cookie:"))
    assert cookie.startswith("Set-Cookie: SYID=") and cookie.endswith("; HttpOnly; SameSite=Lax; Secure")
