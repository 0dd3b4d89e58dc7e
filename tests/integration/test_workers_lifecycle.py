"""`workers = N` through reloads, failures, signals and stops, as real processes on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import textwrap
import time

import pytest

from .conftest import STEELYARD, pool_config, servers_toml
from .l4util import WAIT, wait_until
from .test_workers import ADMIN, close_all, get, serve_cli, server_of, spread_over_workers, with_workers, workers


def test_a_reload_keeps_the_workers_given_on_the_command_line(backends, tmp_path) -> None:
    """`serve --workers 3`, then SIGHUP with the file (no `workers`) unchanged: still 3 workers."""
    path = tmp_path / "one.toml"
    path.write_text(textwrap.dedent(pool_config(servers_toml(backends(1)))) + ADMIN)
    lb = serve_cli(path, ["--workers", "3"], r"3 workers serving")
    try:
        assert len(workers(lb)["processes"]) == 3
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(r"workers of generation 2 serving")
        procs = workers(lb)["processes"]
        assert len(procs) == 3, procs
    finally:
        lb.kill()


def _tls_config(cert, key, servers: str) -> str:
    return with_workers(
        pool_config(servers).replace('pool = "app"', f'pool = "app"\n[listener.tls]\ncert = "{cert}"\nkey = "{key}"', 1)
    )


def test_after_a_failed_reload_restarted_workers_run_the_serving_configuration(tmp_path, backends, balancer) -> None:
    """A reload whose workers cannot start (a certificate only they load) is refused; a worker of
    the serving generation that dies afterwards is replaced with the configuration it served."""
    from .testca import TestCA

    ca = TestCA(tmp_path)
    cert, key = ca.leaf("a.test")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    servers = servers_toml(backends(1))
    lb = balancer(_tls_config(cert, key, servers))
    (tmp_path / "steelyard.toml").write_text(textwrap.dedent(_tls_config(bad, bad, servers)))
    lb.proc.send_signal(signal.SIGHUP)
    lb.wait_for(r"steelyard: reload failed")
    victim = workers(lb)["processes"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    lb.wait_for(rf"pid {victim}\) was killed by SIGKILL; starting another")
    ok = wait_until(lambda: sum(p["serving"] for p in workers(lb)["processes"]) == 2, timeout=6)
    assert ok, "".join(lb.lines[-20:])


def test_a_reload_refused_for_a_taken_port_changes_nothing(tmp_path, backends, balancer) -> None:
    """A reload that adds a listener on a taken port is refused before anything changed: the
    workers keep routing to the servers they had."""
    a, b = backends(2)
    lb = balancer(with_workers(pool_config(servers_toml([a]))))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        extra = f'\n[[listener]]\nname = "more"\nbind = "127.0.0.1:{port}"\npool = "app"\n'
        (tmp_path / "steelyard.toml").write_text(with_workers(textwrap.dedent(pool_config(servers_toml([b]))) + extra))
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(r"steelyard: reload failed")
        seen = {server_of(get(lb.port)[1]) for _ in range(10)}
        assert seen == {"s1"}, seen  # the previous configuration keeps serving
    finally:
        taken.close()


def _generation_serving(lb, generation: int, n: int = 2) -> bool:
    return (
        sum(p["serving"] and p["generation"] == generation and not p["stopping"] for p in workers(lb)["processes"]) == n
    )


def test_a_third_generation_on_high_rows_still_counts_across_workers(inline, balancer) -> None:
    """A second reload while the first generation still finishes a long connection puts the
    third generation on rows 5 and 6; least_conn must still see both workers' connections
    (readers sum every row up to the highest in use)."""
    from .l4util import l4_config
    from .test_tcp_proxy import greeter

    servers = [inline(greeter(name)) for name in (b"a", b"b", b"c")]
    lb = balancer(
        with_workers(l4_config("tcp", [s.address for s in servers], pool='algorithm = "least_conn"', grace="30s"))
    )
    # both first-generation workers hold connections, so neither leaves (freeing its row) before
    # the third generation starts, however fast an idle worker exits
    held = spread_over_workers(lb)
    lb.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: _generation_serving(lb, 2))
    lb.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: _generation_serving(lb, 3))
    close_all(held)
    assert wait_until(lambda: {p["generation"] for p in workers(lb)["processes"]} == {3})
    rows = sorted(p["row"] for p in workers(lb)["processes"])
    assert max(rows) > 1 + 2 * 2, rows  # (rows of a third generation: readers must still see them)
    close_all(spread_over_workers(lb))


def test_a_worker_dying_during_a_failed_reload_is_replaced(tmp_path, backends, balancer) -> None:
    """A serving worker killed while a reload's new workers start (and then fail) is replaced."""
    from .testca import TestCA

    ca = TestCA(tmp_path)
    cert, key = ca.leaf("a.test")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    servers = servers_toml(backends(1))
    lb = balancer(_tls_config(cert, key, servers))
    victim = workers(lb)["processes"][0]["pid"]
    (tmp_path / "steelyard.toml").write_text(textwrap.dedent(_tls_config(bad, bad, servers)))
    lb.proc.send_signal(signal.SIGHUP)
    time.sleep(0.15)  # the new generation is still importing (python start-up: ~0.3s+)
    os.kill(victim, signal.SIGKILL)
    lb.wait_for(r"steelyard: reload failed")
    ok = wait_until(lambda: sum(p["serving"] for p in workers(lb)["processes"]) == 2, timeout=5)
    assert ok, (workers(lb), "".join(line for line in lb.lines if "worker" in line))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_control_process_descriptors_stay_flat_over_restarts_and_reloads(backends, balancer) -> None:
    lb = balancer(with_workers(pool_config(servers_toml(backends(1)))))
    for _ in range(3):
        assert get(lb.port)[0] == 200
    start = _fds(lb.pid())
    for generation in range(2, 8):
        lb.proc.send_signal(signal.SIGHUP)
        lb.wait_for(rf"workers of generation {generation} serving")
    for _ in range(4):
        victim = workers(lb)["processes"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        lb.wait_for(rf"pid {victim}\) was killed by SIGKILL; starting another")
        assert wait_until(lambda: sum(p["serving"] for p in workers(lb)["processes"]) == 2)
    for _ in range(3):
        assert get(lb.port)[0] == 200
    time.sleep(0.5)
    print(
        "fds before",
        start,
        "after",
        _fds(lb.pid()),
        sorted(os.readlink(f"/proc/{lb.pid()}/fd/{f}") for f in os.listdir(f"/proc/{lb.pid()}/fd")),
    )
    assert _fds(lb.pid()) <= start + 2


def _served(lb) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    from .test_admin import admin_port, api

    status, raw = api(admin_port(lb), "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(raw.decode())}
    return sum(
        s.value
        for s in families["steelyard_server_http_responses"].samples
        if s.name == "steelyard_server_http_responses_total"
    )


def test_counters_of_a_generation_that_leaves_are_kept(backends, balancer) -> None:
    """The counters of a generation that leaves on a reload stay in /metrics (its final ones come
    with its goodbye)."""
    lb = balancer(with_workers(pool_config(servers_toml(backends(2)))))
    total = 0
    for generation in range(2, 6):
        for _ in range(30):
            assert get(lb.port)[0] == 200
        total += 30
        lb.proc.send_signal(signal.SIGHUP)  # at once: before the next one-second refresh
        lb.wait_for(rf"workers of generation {generation} serving")
        assert _served(lb) == total


@pytest.mark.parametrize("age", [0.0, 2.5])
def test_sigterm_to_the_whole_group_starts_no_worker_during_shutdown(backends, tmp_path, age) -> None:
    """systemd's KillMode=control-group (and `kill -TERM -PGID`) signals every process at once: the
    workers exit on their own while the control process stops, and none is started again."""
    import subprocess

    path = tmp_path / "steelyard.toml"
    path.write_text(with_workers(pool_config(servers_toml(backends(1)))))
    proc = subprocess.Popen(
        [*STEELYARD, "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "listener web serving" in line:
                break
        time.sleep(age)  # (older than YOUNG: restarted at once, no back-off)
        pids = {int(p) for p in re.search(r"pids ([\d, ]+)", "".join(lines)).group(1).split(", ")}
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        lines.append(out)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(lines)
    time.sleep(0.5)
    strays = [p for p in _pids_of_group(proc.pid) if p not in pids]
    _kill_all(_pids_of_group(proc.pid))
    assert proc.returncode == 0, text
    assert strays == [], ("workers started during shutdown outlive the control process", text)
    assert "starting another" not in text, text


def _pids_of_group(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    out.append(int(d))
            except OSError:
                pass
    return out


def _kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("n", [1, 2])
def test_during_a_graceful_stop_new_connections_are_refused(backends, balancer, n) -> None:
    """During a graceful stop a new connection is refused at once (with one process or several), not
    left hanging in a queue no worker accepts from."""
    import threading

    (slow,) = backends([("slow", "3000ms")])
    lb = balancer(with_workers(pool_config(servers_toml([slow])), n))
    busy = threading.Thread(target=lambda: get(lb.port, "/"))
    busy.start()
    time.sleep(0.5)  # one request in flight: its worker takes ~3 s to stop
    lb.proc.send_signal(signal.SIGTERM)
    lb.wait_for(r"steelyard: stopping")
    time.sleep(0.3)
    started = time.monotonic()
    try:
        late = socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT)
    except ConnectionRefusedError:
        outcome = "refused"
    else:
        late.settimeout(WAIT)
        late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            outcome = f"connected, then {late.recv(100)!r}"
        except OSError as exc:
            outcome = f"connected, then {exc!r}"
        late.close()
    waited = time.monotonic() - started
    busy.join(WAIT)
    assert outcome == "refused" and waited < 0.5, (outcome, round(waited, 2))


def test_new_udp_flows_reach_the_staying_generation_during_a_reload(backends, balancer) -> None:
    """While a generation leaves on a reload, new UDP flows are answered: the leaving workers' sockets
    leave the SO_REUSEPORT group at once."""
    import threading

    from .l4util import DnsServer
    from .test_udp_proxy import query

    (slow,) = backends([("slow", "4000ms")])
    dns = DnsServer("127.0.0.11")
    try:
        toml = with_workers(
            pool_config(servers_toml([slow]))
            + f"""
[[listener]]
name = "dns"
bind = "127.0.0.1:0"
mode = "udp"
pool = "udp"

[[pool]]
name = "udp"
servers = [ {{ address = "{dns.address}" }} ]
"""
        )
        lb = balancer(toml)
        udp_port = int(lb.wait_for(r"listener dns serving udp on [\d.]+:(\d+)")[0].group(1))
        hold = [threading.Thread(target=lambda: get(lb.port, "/")) for _ in range(4)]
        for t in hold:  # (a new connection each: both workers have one in flight)
            t.start()
        time.sleep(0.5)
        lb.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: _generation_serving(lb, 2) and any(p["stopping"] for p in workers(lb)["processes"]))
        unanswered = 0
        for _ in range(20):  # fresh flows (a new source port each) while generation 1 drains
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                c.settimeout(0.5)
                c.sendto(query(), ("127.0.0.1", udp_port))
                c.recvfrom(512)
            except TimeoutError:
                unanswered += 1
            finally:
                c.close()
        for t in hold:
            t.join(WAIT)
        assert unanswered == 0, f"{unanswered} of 20 new UDP flows got no answer during the reload"
    finally:
        dns.close()


def test_a_connection_that_never_sends_does_not_hold_a_stop(backends, balancer) -> None:
    """A connection that connected and never sent a request (a browser's preconnect, a probe) does
    not keep a leaving generation for the whole grace: it is closed after the moment of grace that
    idle connections get, long before the 60 s grace ends."""
    toml = pool_config(servers_toml(backends(1))).replace('shutdown_grace = "5s"', 'shutdown_grace = "60s"')
    lb = balancer(with_workers(toml))
    idle = [socket.create_connection(("127.0.0.1", lb.port), timeout=WAIT) for _ in range(4)]
    try:
        assert get(lb.port)[0] == 200  # a later connection answered: the silent ones were accepted (in order)
        lb.proc.send_signal(signal.SIGHUP)
        # printed once the previous generation has left; held by the silent connections, that
        # would take the whole 60 s grace, far past wait_for's limit
        lb.wait_for(r"workers of generation 2 serving .*the previous ones .* have finished")
    finally:
        for s in idle:
            s.close()
