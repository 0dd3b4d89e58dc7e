"""`steelyard health` makes real requests to a running balancer (steelyard.control.selfcheck):
the admin API's status, GET / on every http listener (over TLS where it terminates TLS) and a
connection to every tcp listener. A stopped (SIGSTOP) balancer still has its sockets accepting
in the kernel; health must fail then, and pass again once it runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from .conftest import STEELYARD
from .redisproc import free_port
from .testca import TestCA


def health(config, timeout: str = "1s") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*STEELYARD, "health", "--config", str(config), "--timeout", timeout],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_health_passes_on_a_serving_balancer_and_fails_on_a_stopped_one(tmp_path, backends, balancer):
    (a,) = backends(["a"])
    cert, key = TestCA(tmp_path).leaf("localhost")
    web, tls, db, admin = free_port(), free_port(), free_port(), free_port()
    bal = balancer(f"""
        [[listener]]
        name = "web"
        bind = "127.0.0.1:{web}"
        pool = "app"

        [[listener]]
        name = "secure"
        bind = "127.0.0.1:{tls}"
        pool = "app"
        tls = {{ cert = "{cert}", key = "{key}" }}

        [[listener]]
        name = "db"
        bind = "127.0.0.1:{db}"
        mode = "tcp"
        pool = "app"

        [[pool]]
        name = "app"
        servers = [ {{ address = "{a.address}" }} ]

        [admin]
        bind = "127.0.0.1:{admin}"
    """)
    bal.wait_for(r"listener db serving tcp")
    config = tmp_path / "steelyard.toml"
    done = health(config)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "steelyard health: serving: admin 200 (1 of 1 servers up), web 200, secure 200, db accepts"
    )

    os.kill(bal.pid(), signal.SIGSTOP)  # its sockets still accept (kernel backlog); nothing answers
    try:
        done = health(config, "300ms")
    finally:
        os.kill(bal.pid(), signal.SIGCONT)
    assert done.returncode == 1
    assert done.stderr.strip() == f"steelyard health: admin API on 127.0.0.1:{admin}: no answer within 0.3s"
    assert health(config).returncode == 0


def test_health_fails_on_a_listener_that_is_not_the_balancer(tmp_path):
    with socket.socket() as stuck:  # listening, never accepting: connect succeeds, no HTTP comes
        stuck.bind(("127.0.0.1", 0))
        stuck.listen()
        port = stuck.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(
            f'[[listener]]\nname = "web"\nbind = "127.0.0.1:{port}"\npool = "p"\n\n'
            '[[pool]]\nname = "p"\nservers = [ { address = "127.0.0.1:9001" } ]\n'
        )
        done = health(config, "200ms")
    assert done.returncode == 1
    assert "listener web on 127.0.0.1:" in done.stderr and "no answer within 0.2s" in done.stderr
    closed = tmp_path / "closed.toml"
    closed.write_text(config.read_text().replace(str(port), str(free_port())))
    done = health(closed)
    assert done.returncode == 1 and "Connection refused" in done.stderr
