"""Filters that misbehave (tests/advfilters.py), through the real proxy: what they set or return
is refused with a 500 for that request only, nothing malformed reaches the server, and the
balancer (and the server's in-flight count) carries on."""

from __future__ import annotations

import signal
import socket
import struct
import textwrap

import pytest

from .inline import response_bytes
from .l4util import wait_until
from .rawhttp import RawConnection, get
from .test_admin import TOKEN, admin_port, api
from .test_filters import ENV


def recorder(peer, index, server) -> None:
    """Records every request and answers each with "ok" (kept alive)."""
    while True:
        head, body = peer.request()
        server.record(index, head, body)
        peer.sock.sendall(response_bytes(200, b"ok"))


def config(port: int, filters: str = '"Adversary", "RespAdversary", "LogRaises"') -> str:
    uses = ", ".join(f'{{ use = "tests.advfilters:{name.strip(chr(34))}" }}' for name in filters.split(", "))
    return f"""
        shutdown_grace = "2s"

        [[listener]]
        name = "web"
        bind = "127.0.0.1:0"
        pool = "app"
        request_timeout = "1s"
        filters = [ {uses} ]

        [[pool]]
        name = "app"
        servers = [ {{ address = "127.0.0.1:{port}" }} ]

        [admin]
        bind = "127.0.0.1:0"
        token = "{TOKEN}"
    """


@pytest.fixture
def adversary(inline, balancer):
    srv = inline(recorder)
    return srv, balancer(config(srv.port), env=ENV)


def heads_seen(srv) -> list[bytes]:
    with srv.lock:
        return [head for _, head, _ in srv.seen]


def in_flight(lb) -> list[int]:
    _, body = api(admin_port(lb), "GET", "/api/v1/pools/app")
    return [s["active"] for s in body["servers"]]


def ask(lb, path: str) -> int:
    with RawConnection(lb.port) as c:
        c.send(get(path))
        return c.response()[0]


REFUSED = [
    "/crlf", "/lf", "/nul", "/nonlatin", "/spacename", "/colonname", "/cl", "/te", "/xfp",
    "/path-noslash", "/path-space", "/path-absolute", "/path-latin1", "/query-space", "/pool-unknown", "/many",
    "/status-1xx", "/status-999", "/status-0", "/204-body", "/body-none", "/returns-int",
]  # fmt: skip


def test_what_a_filter_may_not_set_answers_500_and_nothing_reaches_the_server(adversary) -> None:
    srv, lb = adversary
    for path in REFUSED:
        assert ask(lb, path) == 500, path
    assert heads_seen(srv) == []
    assert ask(lb, "/fine") == 200


def test_a_filter_cannot_send_a_second_host_header(adversary) -> None:
    srv, lb = adversary
    assert ask(lb, "/twohosts") == 500  # (routing would read one Host, the server perhaps the other)
    assert heads_seen(srv) == []


def test_a_response_with_a_body_not_bytes_or_str_answers_500(adversary) -> None:
    srv, lb = adversary
    assert ask(lb, "/body-int") == 500  # (bytes(3) would have been three NUL bytes)
    assert ask(lb, "/body-list") == 500


@pytest.mark.parametrize("path", ["/mutated-status", "/mutated-body", "/mutated-headers"])
def test_a_response_changed_after_it_was_built_answers_500(adversary, path) -> None:
    srv, lb = adversary
    with RawConnection(lb.port) as c:
        c.send(get(path))
        assert c.response()[0] == 500  # (not a "101" with a body, nor a connection dropped unanswered)
        c.send(get("/next"))  # (and the connection goes on)
        assert c.response()[0] == 200
    (line,) = lb.wait_for(r"filter tests\.advfilters:Adversary failed in request_filter.*cannot be sent")
    assert path in line.group(0)


def test_a_filter_raising_cancelled_error_answers_500(adversary) -> None:
    srv, lb = adversary
    assert ask(lb, "/cancelled") == 500
    assert ask(lb, "/fine") == 200


@pytest.mark.parametrize("path", ["/exit", "/aexit"])
def test_a_filter_calling_sys_exit_fails_its_request_not_the_balancer(inline, balancer, path) -> None:
    srv = inline(recorder)
    lb = balancer(config(srv.port, '"Exits"'), env=ENV)
    assert ask(lb, path) == 500
    assert ask(lb, "/fine") == 200
    assert lb.proc.poll() is None


def rst_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.mark.parametrize("path", ["/hang", "/u-hang", "/r-hang", "/u-slow", "/r-slow", "/r-late-raise"])
def test_a_client_leaving_while_a_phase_is_awaited_leaves_nothing_in_flight(adversary, path) -> None:
    srv, lb = adversary
    s = socket.create_connection(("127.0.0.1", lb.port))
    s.sendall(get(path))
    if path.startswith(("/u-", "/r-")):  # (past the pick: the server is held until the client leaves)
        assert wait_until(lambda: in_flight(lb) == [1])
    if path.startswith("/r-"):
        assert wait_until(lambda: len(heads_seen(srv)) == 1)
    rst_close(s)
    assert wait_until(lambda: in_flight(lb) == [0])
    assert ask(lb, "/fine") == 200
    assert not [line for line in lb.lines if "never retrieved" in line or "Fatal error" in line]


def test_a_reload_to_a_filter_module_that_exits_on_import_is_refused(inline, balancer, tmp_path) -> None:
    srv = inline(recorder)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(7)\n")
    env = {"PYTHONPATH": f"{ENV['PYTHONPATH']}:{tmp_path}"}
    lb = balancer(config(srv.port, '"Adversary"'), env=env)
    lb.config_path.write_text(
        textwrap.dedent(config(srv.port)).replace("tests.advfilters:LogRaises", "exits_on_import:Any")
    )
    lb.proc.send_signal(signal.SIGHUP)
    lb.wait_for(r"failed to import: SystemExit: 7")
    assert lb.proc.poll() is None
    assert ask(lb, "/fine") == 200
