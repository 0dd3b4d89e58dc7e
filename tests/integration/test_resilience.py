"""Health checks, failover, retries, backups and overload, with real processes on 127.0.0.1.

Every wait is bounded by a deadline and polls on what it waits for (a response from a given
server, a log line); nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import threading
import time

import pytest

from .conftest import Backend, pool_config, servers_toml

WAIT = 15.0
FAST_CHECKS = """
    [pool.health]
    path = "/healthz"
    interval = "200ms"
    fail_interval = "100ms"
    timeout = "300ms"
    rise = 2
    fall = 2
"""


def get(
    port: int,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def served_by(port: int, n: int) -> list[str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        return [get(port, conn=c)[1].get("x-served-by", "?") for _ in range(n)]
    finally:
        c.close()


def until(predicate, what: str, deadline: float = WAIT):
    """Poll ``predicate`` (each call does real work, e.g. requests) until it is truthy."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
    pytest.fail(f"timed out waiting for {what}")


def test_chaos_a_backend_killed_and_restarted_every_two_seconds_costs_no_request(backends, balancer):
    """8 clients for 20 s (bounded); one of 3 backends is SIGKILLed and restarted every 2 s."""
    a, b, victim = backends(["a", "b", "victim"])
    lb = balancer(pool_config(servers_toml([a, b, victim]), FAST_CHECKS))
    stop = threading.Event()
    failures: list[str] = []
    log: list[tuple[float, str]] = []  # (when, served by)
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        for _ in range(200_000):  # bounded in count as well as in time
            if stop.is_set():
                break
            try:
                status, headers, _ = get(lb.port, "/", conn=conn)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
                continue
            if status != 200:
                failures.append(f"status {status}")
            with lock:
                log.append((time.monotonic(), headers.get("x-served-by", "?")))
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    port = victim.port
    returns: list[float] = []
    deaths: list[float] = []
    end = time.monotonic() + 20.0
    while time.monotonic() < end - 2.0:
        phase_end = time.monotonic() + 2.0
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        deaths.append(time.monotonic())
        victim = Backend("victim", port=port)  # back on the same port; prints once it listens
        returns.append(time.monotonic())
        while time.monotonic() < phase_end:
            time.sleep(0.05)  # the chaos schedule itself (not a synchronisation)
    stop.set()
    for t in threads:
        t.join(WAIT)
    victim.kill()
    lb.terminate()
    assert failures == [], f"{len(failures)} failed requests, e.g. {failures[:5]}; balancer said:\n{''.join(lb.lines)}"
    total = len(log)
    back_after = []
    for r in returns:
        first = next((t for t, who in log if who == "victim" and t > r), None)
        if first is not None:
            back_after.append(first - r)
    print(
        f"\nchaos: {total} requests, 0 failed; {len(returns)} kills; victim served again "
        f"{len(back_after)} times, after {', '.join(f'{x * 1000:.0f}ms' for x in back_after)}"
    )
    assert total > 1000
    assert back_after, "the victim never got traffic again after a restart"
    assert sum(1 for _, who in log if who == "victim") > 0


def test_a_failing_health_check_takes_a_server_out_and_passing_ones_bring_it_back(backends, balancer):
    a, b = backends(["a", "b"])
    lb = balancer(pool_config(servers_toml([a, b]), FAST_CHECKS))
    until(lambda: set(served_by(lb.port, 4)) == {"a", "b"}, "both servers in rotation")
    get(b.port, "/healthz/set/500")
    until(lambda: set(served_by(lb.port, 20)) == {"a"}, "b to leave the rotation")
    lb.proc.send_signal(signal.SIGUSR1)  # status table on stdout
    lb.wait_for(r"\bb\s+down\b.*HTTP 500 on /healthz")
    get(b.port, "/healthz/set/200")
    until(lambda: "b" in served_by(lb.port, 4), "b to come back")
    lb.terminate()
    out = "".join(lb.lines)
    assert "pool app: server b: down: HTTP 500 on /healthz (expected 200-399)" in out
    assert "pool app: server b: up: HTTP 200 on /healthz" in out


def test_all_servers_down_answers_503_at_once_and_a_backup_answers_when_there_is_one(backends, balancer):
    a, spare = backends(["a", "spare"])
    lb = balancer(pool_config(f'servers = [ {{ address = "{a.address}", name = "a" }} ]', FAST_CHECKS))
    with_backup = balancer(
        pool_config(
            f'servers = [ {{ address = "{a.address}", name = "a" }},'
            f' {{ address = "{spare.address}", name = "spare", backup = true }} ]',
            FAST_CHECKS,
        ),
        name="backup.toml",
    )
    assert set(served_by(with_backup.port, 6)) == {"a"}  # the backup waits while a primary is usable
    get(a.port, "/healthz/set/503")
    until(lambda: get(lb.port)[0] == 503, "503 from the pool without a usable server")
    started = time.monotonic()
    status, headers, body = get(lb.port)
    assert status == 503 and b"no server is available" in body
    assert time.monotonic() - started < WAIT  # answered, not hung (the exact time is for the bench)
    until(lambda: served_by(with_backup.port, 1) == ["spare"], "the backup to answer")
    get(a.port, "/healthz/set/200")
    until(lambda: served_by(with_backup.port, 1) == ["a"], "the primary to take over again")


def test_a_post_to_a_refused_server_goes_to_another_one_but_one_that_died_mid_request_is_not_replayed(
    backends, balancer, inline
):
    (good,) = backends(["good"])
    hole = socket_port_nobody_listens_on()
    lb = balancer(
        pool_config(
            f'servers = [ {{ address = "127.0.0.1:{hole}", name = "hole" }}, {{ address = "{good.address}", name = "good" }} ]\n'
            "retry_header = true\noutlier = { consecutive_failures = 0 }"
        )
    )
    tried = []
    for _ in range(6):  # (the rotation goes on after the server that answered: "hole" is always next)
        status, headers, body = get(lb.port, "/submit", "POST", b"payload")
        assert status == 200 and headers["x-served-by"] == "good"
        assert b'"body_bytes":7' in body
        tried.append(headers.get("x-steelyard-retries"))
    assert tried == ["1"] * 6  # each went to the refusing server first, then on to the good one

    seen: list[bytes] = []

    def dies_mid_request(peer, index, server) -> None:
        seen.append(peer.request()[0])  # the whole request arrived; the server dies before answering

    dying = inline(dies_mid_request)
    lb2 = balancer(
        pool_config(
            f'servers = [ {{ address = "127.0.0.1:{dying.port}", name = "dying" }}, {{ address = "{good.address}", name = "good" }} ]\n'
            'algorithm = "weighted_round_robin"\noutlier = { consecutive_failures = 0 }'
        ),
        name="dying.toml",
    )
    statuses = [get(lb2.port, "/submit", "POST", b"payload")[0] for _ in range(4)]
    assert statuses.count(502) == 2 and statuses.count(200) == 2  # the POSTs that reached "dying" fail
    assert len(seen) == 2
    gets = [get(lb2.port, "/read")[0] for _ in range(4)]
    assert gets == [200] * 4  # a GET is replayed on the other server
    assert len(seen) == 4


def socket_port_nobody_listens_on() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # (bound, never listening, then closed: connections to it are refused)
    return port


def test_overload_500_clients_against_max_conns_10_and_a_queue_of_50(backends, balancer):
    (slow,) = backends([("slow", "200ms")])
    lb = balancer(pool_config(servers_toml([slow]), 'max_conns = 10\nmax_queue = 50\nqueue_timeout = "10s"'))
    rss_before = lb.rss_kib()

    async def one(i: int) -> tuple[int, bool, bool]:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
        try:
            writer.write(b"GET /item/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT * 2)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            headers = dict(x.lower().split(": ", 1) for x in lines[1:] if x)
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
            complete = status != 200 or body.endswith(b"}")
            return status, "retry-after" in headers, complete
        finally:
            writer.close()

    async def crowd():
        return await asyncio.gather(*(one(i) for i in range(500)))

    results = asyncio.run(crowd())
    rss_after = lb.rss_kib()
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 503]
    assert len(ok) + len(busy) == 500, sorted({r[0] for r in results})
    assert len(ok) >= 60  # 10 in service and 50 queued are always served
    assert busy and all(retry_after for _, retry_after, _ in busy)
    assert all(complete for _, _, complete in ok)
    print(
        f"\noverload: {len(ok)} served, {len(busy)} refused with 503 + Retry-After; "
        f"RSS {rss_before} KiB -> {rss_after} KiB"
    )
    assert rss_after - rss_before < 64 * 1024  # bounded: not a copy of every refused request


def test_slow_start_a_returning_servers_share_grows_over_the_window(backends, balancer):
    a, b, fresh = backends(["a", "b", "fresh"])
    lb = balancer(
        pool_config(servers_toml([a, b, fresh]), 'slow_start = "3s"\nslow_start_floor = 0.05\n' + FAST_CHECKS)
    )
    get(fresh.port, "/healthz/set/500")
    until(lambda: "fresh" not in served_by(lb.port, 30), "fresh to leave the rotation")
    get(fresh.port, "/healthz/set/200")
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
    first = until(
        lambda: get(lb.port, conn=conn)[1]["x-served-by"] == "fresh" and time.monotonic(), "fresh to come back"
    )
    seen: list[tuple[float, str]] = []
    for _ in range(100_000):  # bounded: about 4 s of sequential requests
        now = time.monotonic() - first
        if now > 4.0:
            break
        seen.append((now, get(lb.port, conn=conn)[1]["x-served-by"]))
    conn.close()

    def share(lo: float, hi: float) -> float:
        names = [who for t, who in seen if lo <= t < hi]
        assert len(names) > 50, f"too few requests in [{lo}, {hi}) s"
        return names.count("fresh") / len(names)

    early, middle, late = share(0.0, 1.0), share(1.0, 2.5), share(3.2, 4.0)
    print(f"\nslow start: share of the returning server {early:.2f} -> {middle:.2f} -> {late:.2f} (fair 0.33)")
    assert early < middle < late
    assert early < 0.5 / 3  # well below its fair share at first
    assert late > 0.8 / 3  # about its fair share once the window is over


def test_a_server_that_never_answers_costs_a_get_one_try_timeout_not_a_failure(backends, balancer, inline):
    (good,) = backends(["good"])
    held: list[bytes] = []

    def silent(peer, index, server) -> None:
        held.append(peer.request()[0])
        server.release.wait(WAIT)  # never answers (until the test ends)

    mute = inline(silent)
    lb = balancer(
        pool_config(
            f'servers = [ {{ address = "{mute.address}", name = "mute" }}, {{ address = "{good.address}", name = "good" }} ]\n'
            'try_timeout = "300ms"\nretry_header = true\noutlier = { consecutive_failures = 0 }'
        )
    )
    # (round robin goes on after the server that answered, so "mute" is always tried first)
    results = [get(lb.port, "/x") for _ in range(4)]
    assert [(s, h["x-served-by"], h.get("x-steelyard-retries")) for s, h, _ in results] == [(200, "good", "1")] * 4
    assert len(held) == 4
    status, _, body = get(lb.port, "/post", "POST", b"data")
    assert (status, len(held)) == (504, 5)  # a POST that timed out is not replayed: it may have been done
    assert b"did not answer in time" in body
