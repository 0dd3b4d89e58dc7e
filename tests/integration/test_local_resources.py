"""Running out of file descriptors is this process's problem, not the server's: connects that
fail for lack of descriptors are answered 503 without counting against the server (which stays
in the pool), a line says why (at most once a second), and service resumes as soon as
descriptors free up. ``serve`` raises its soft open-files limit to the hard one at start."""

from __future__ import annotations

import socket
import sys
import textwrap

from .conftest import Proc, address_config
from .hardening import status_of
from .inline import WAIT, read_until_eof, response_bytes

FD_LIMIT = 64  # soft and hard: the balancer cannot raise it


def held_handler(peer, index, server) -> None:
    """Answer each request once the test releases the server."""
    peer.head()
    server.release.wait(WAIT * 3)
    peer.sock.sendall(response_bytes(200, b"ok", b"Connection: close\r\n"))


def serve_with_fd_limit(path) -> Proc:
    argv = ["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}", sys.executable, "-m", "steelyard.cli", "serve"]
    return Proc([*argv, "--config", str(path)], r"listener (\S+) serving http on ([\d.]+):(\d+)")


def test_connects_failing_for_lack_of_descriptors_do_not_eject_the_server(inline, tmp_path):
    server = inline(held_handler)
    path = tmp_path / "steelyard.toml"
    path.write_text(textwrap.dedent(address_config(server.port)))
    bal = serve_with_fd_limit(path)
    port = int(bal.matches[0].group(3))
    clients = []
    try:
        assert any(f"open files limit {FD_LIMIT}" in line for line in bal.lines)
        for i in range(FD_LIMIT):  # more requests in flight than descriptors for both their sides
            c = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            c.sendall(b"GET /held%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
            clients.append(c)
        bal.wait_for(r"lack of local resources", timeout=WAIT)
        server.release.set()  # the held requests are answered; their descriptors free up
        answers = [read_until_eof(c) for c in clients]
        assert sum(data.startswith(b"HTTP/1.1 200") for data, _ in answers) >= 10
        for i in range(10):  # at once: the server was not ejected
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as c:
                c.sendall(b"GET /after%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
                data, _ = read_until_eof(c)
            assert status_of(data) == 200, data[:200]
        assert not any("eject" in line.lower() for line in bal.lines), "".join(bal.lines)
    finally:
        for c in clients:
            c.close()
        bal.terminate()
