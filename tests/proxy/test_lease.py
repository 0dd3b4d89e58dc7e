"""steelyard.proxy.lease: what holding a picked server means — in-flight counts, outcomes,
passive-health streaks, the balancer's hook, and waking the pool's queue — for an HTTP
exchange (settle, abandon) and for L4 relays and flows (connected, failed, release, learn)."""

from steelyard.core.model import Server
from steelyard.proxy.http.exchange import Exchange
from steelyard.proxy.lease import Lease


def request():
    return Exchange(0.0)


class Hook:
    def __init__(self):
        self.calls = []

    def __call__(self, server, ok, elapsed):
        self.calls.append((server, ok, elapsed, server.load.active))


class FakePool:
    """What settle/abandon read of a pool: waiting requests and passive health thresholds."""

    def __init__(self, eject_after=0, eject_5xx=0, waiting=()):
        self.eject_after, self.eject_5xx = eject_after, eject_5xx
        self.waiting = list(waiting)
        self.on_done = None
        self.reports = []
        self.wakes = 0

    def failing(self, server, why):
        self.reports.append((server.name, why))

    def wake(self):
        self.wakes += 1


def dispatched(t_start=10.0, hook=None, pool=None, server=None, status=200):
    """An exchange holding ``server`` since ``t_start`` (taken as the data plane takes it)."""
    server = server or Server("s", "127.0.0.1", 1)
    ex = request()
    pool = pool or FakePool()
    pool.on_done = hook
    ex.take(pool, server, t_start)
    ex.status = status
    return ex, server


def test_failures_in_a_row_are_reported_to_the_pool_once_they_reach_the_threshold():
    pool = FakePool(eject_after=3)
    server = Server("s", "127.0.0.1", 1)
    for ok in (False, False, True, False, False):  # a success breaks the streak
        dispatched(pool=pool, server=server)[0].settle(ok, 0.0)
    assert pool.reports == [] and server.load.fail_streak == 2
    dispatched(pool=pool, server=server)[0].settle(False, 0.0)
    assert pool.reports == [("s", "3 failed requests in a row (connect, reset or timeout)")]


def test_5xx_responses_count_only_when_the_pool_asks_for_it():
    server = Server("s", "127.0.0.1", 1)
    quiet = FakePool(eject_after=2)
    for _ in range(5):
        dispatched(pool=quiet, server=server, status=503)[0].settle(True, 0.0)
    assert quiet.reports == [] and server.load.fail_streak == 0 and server.load.err_streak == 5
    strict = FakePool(eject_5xx=7)
    for status in (500, 502):
        dispatched(pool=strict, server=server, status=status)[0].settle(True, 0.0)
    assert strict.reports == [("s", "7 failures or 5xx responses in a row")]
    dispatched(pool=strict, server=server, status=204)[0].settle(True, 0.0)
    assert (server.load.fail_streak, server.load.err_streak) == (0, 0)


def test_an_ending_exchange_wakes_the_pools_waiting_requests():
    pool = FakePool(waiting=["someone"])
    dispatched(pool=pool)[0].settle(True, 0.0)
    dispatched(pool=pool)[0].abandon()
    assert pool.wakes == 2
    idle = FakePool()
    dispatched(pool=idle)[0].settle(True, 0.0)
    assert idle.wakes == 0


def test_settle_ok_counts_once_and_reports_time_to_head():
    hook = Hook()
    ex, server = dispatched(hook=hook)
    ex.t_head = 10.25
    ex.settle(True, 99.0)
    ex.settle(True, 99.0)
    ex.settle(False, 99.0)
    load = server.load
    assert (load.active, load.requests, load.failures) == (0, 1, 0)
    assert hook.calls == [(server, True, 0.25, 0)]  # called after active was decremented
    assert ex.server is None


def test_settle_failure_without_head_reports_time_to_now():
    hook = Hook()
    ex, server = dispatched(hook=hook)
    ex.settle(False, 12.5)
    assert (server.load.active, server.load.requests, server.load.failures) == (0, 0, 1)
    assert hook.calls == [(server, False, 2.5, 0)]


def test_settle_without_hook():
    ex, server = dispatched()
    ex.settle(True, 0.0)
    assert (server.load.active, server.load.requests) == (0, 1)


def test_abandon_drops_the_in_flight_count_without_reporting():
    hook = Hook()
    ex, server = dispatched(hook=hook)
    ex.abandon()
    ex.abandon()
    ex.settle(True, 0.0)
    assert (server.load.active, server.load.requests, server.load.failures) == (0, 0, 0)
    assert hook.calls == []


def test_settle_and_abandon_without_a_server_do_nothing():
    ex = request()
    ex.abandon()
    ex.settle(True, 0.0)
    assert ex.server is None


def held(hook=None, pool=None, server=None, t_start=10.0):
    """An L4 lease (a TCP relay's, a UDP flow's) holding ``server`` since ``t_start``."""
    server = server or Server("s", "127.0.0.1", 1)
    pool = pool or FakePool()
    pool.on_done = hook
    lease = Lease()
    lease.take(pool, server, t_start)
    return lease, server


def test_a_connect_reports_its_time_and_the_connection_counts_until_released():
    hook = Hook()
    lease, server = held(hook)
    assert server.load.active == 1
    lease.connected(10.5)
    assert hook.calls == [(server, True, 0.5, 1)] and server.load.active == 1
    lease.release()
    lease.release()
    assert (server.load.active, server.load.requests, server.load.failures) == (0, 1, 0)


def test_a_failed_connect_ends_the_lease_and_counts_against_the_server():
    hook, pool = Hook(), FakePool(eject_after=2, waiting=["someone"])
    server = Server("s", "127.0.0.1", 1)
    for _ in range(2):
        lease, _ = held(hook, pool, server)
        lease.failed(11.0, "connection refused")
        lease.release()  # (already ended: nothing more)
    assert (server.load.active, server.load.requests, server.load.failures) == (0, 0, 2)
    assert hook.calls == [(server, False, 1.0, 0)] * 2
    assert pool.reports == [("s", "2 failed connects in a row (connection refused)")] and pool.wakes == 2


def test_a_connect_clears_the_failure_streaks():
    server = Server("s", "127.0.0.1", 1)
    server.load.fail_streak = server.load.err_streak = 3
    lease, _ = held(server=server)
    lease.connected(10.0)
    assert (server.load.fail_streak, server.load.err_streak) == (0, 0)


def test_a_failure_after_a_reported_outcome_does_not_teach_the_balancer_twice():
    hook = Hook()
    lease, server = held(hook)
    lease.connected(10.1)
    lease.failed(12.0, "an ICMP error", learn=False)
    assert [c[1] for c in hook.calls] == [True] and server.load.failures == 1


def test_learn_tells_only_the_balancer():
    hook = Hook()
    lease, server = held(hook)
    lease.learn(False, 13.0)
    assert hook.calls == [(server, False, 3.0, 1)] and server.load.failures == 0
    lease.release()
    lease.learn(False, 14.0)  # (ended: nothing to tell)
    assert len(hook.calls) == 1
