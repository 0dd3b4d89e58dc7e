"""steelyard.core.health: rise/fall hysteresis, ejection, backups, panic, drain, slow start windows.

Time is a number passed in (a fake clock): nothing sleeps.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from steelyard.core.health import DRAIN, MAINT, READY, EjectionPolicy, Hysteresis, PoolHealth, ServerState
from steelyard.core.model import Server


def servers(*names: str) -> list[Server]:
    return [Server(n, "127.0.0.1", 9000 + i) for i, n in enumerate(names)]


def pool(
    *names: str,
    rise: int = 2,
    fall: int = 3,
    backups: tuple[str, ...] = (),
    checks: bool = True,
    panic: int = 0,
    ejection: EjectionPolicy | None = None,
) -> PoolHealth:
    states = [
        ServerState(s, backup=s.name in backups, check=Hysteresis(rise, fall) if checks else None)
        for s in servers(*names)
    ]
    return PoolHealth(states, ejection=ejection, panic_threshold=panic)


def names(found) -> list[str]:
    return [s.name for s in found]


# -- hysteresis ------------------------------------------------------------------------


def test_the_first_result_decides_then_fall_failures_take_a_server_down_and_rise_successes_bring_it_back():
    h = Hysteresis(rise=2, fall=3)
    assert h.observe(True) is False and h.up
    assert [h.observe(False) for _ in range(3)] == [False, False, True]
    assert not h.up
    assert [h.observe(True) for _ in range(2)] == [False, True]
    assert h.up


def test_a_dead_server_leaves_at_its_first_check():
    h = Hysteresis(rise=2, fall=3)
    assert h.observe(False) is True and not h.up


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_flapping_inside_the_thresholds_changes_nothing(results, rise, fall):
    """The state flips exactly when the last ``fall`` (or ``rise``) results all disagree with it."""
    h = Hysteresis(rise, fall)
    h.observe(True)
    up, against = True, 0
    for ok in results:
        flipped = h.observe(ok)
        against = 0 if ok == up else against + 1
        expect = against >= (rise if ok else fall)
        if expect:
            up, against = ok, 0
        assert flipped == expect and h.up == up


def test_failing_means_checks_should_come_faster():
    h = Hysteresis(rise=2, fall=3)
    h.observe(True)
    assert not h.failing
    h.observe(False)
    assert h.failing  # going down
    h.observe(True)
    assert not h.failing


# -- a pool's usable servers -------------------------------------------------------------


def test_a_server_out_by_checks_leaves_the_usable_set_and_comes_back_with_its_reason():
    p = pool("a", "b", "c", fall=2, rise=2)
    a, b, c = p.states
    for s in p.states:
        p.check_result(s, True, "HTTP 200", 0.0)
    assert names(p.usable()) == ["a", "b", "c"]
    assert p.check_result(b, False, "HTTP 500 on /healthz", 1.0) is False
    assert p.check_result(b, False, "HTTP 500 on /healthz", 2.0) is True
    assert names(p.usable()) == ["a", "c"]
    assert (b.status, b.reason, b.changed_at) == ("down", "down: HTTP 500 on /healthz", 2.0)
    p.check_result(b, True, "HTTP 200", 3.0)
    assert p.check_result(b, True, "HTTP 200", 4.0) is True
    assert names(p.usable()) == ["a", "b", "c"]
    assert b.usable_since == 4.0  # slow start counts from here
    assert "server b: down: HTTP 500 on /healthz" in p.events


def test_backups_serve_only_while_no_primary_is_usable():
    p = pool("a", "b", "spare", backups=("spare",), fall=1, rise=1)
    a, b, spare = p.states
    assert names(p.usable()) == ["a", "b"]
    p.check_result(a, False, "refused", 1.0)
    assert names(p.usable()) == ["b"]
    p.check_result(b, False, "refused", 1.0)
    assert names(p.usable()) == ["spare"]
    p.check_result(spare, False, "refused", 1.0)
    assert p.usable() == ()
    p.check_result(a, True, "ok", 2.0)
    assert names(p.usable()) == ["a"]


def test_panic_balances_over_every_ready_primary_when_too_few_are_healthy():
    p = pool("a", "b", "c", "d", fall=1, panic=50)
    a, b, c, d = p.states
    p.check_result(a, False, "x", 1.0)
    assert names(p.usable()) == ["b", "c", "d"] and not p.panic  # 75% healthy
    p.check_result(b, False, "x", 1.0)
    assert names(p.usable()) == ["b", "c", "d"][1:] and not p.panic  # 50%: not below the threshold
    p.check_result(c, False, "x", 1.0)
    assert names(p.usable()) == ["a", "b", "c", "d"] and p.panic
    p.check_result(d, False, "x", 1.0)
    assert names(p.usable()) == ["a", "b", "c", "d"] and p.panic  # none healthy: try them all
    p.set_admin(a, MAINT, 2.0)
    assert names(p.usable()) == ["b", "c", "d"]  # maintenance is never picked, even in panic
    assert "panic mode on: balancing over every server" in p.events


def test_without_a_panic_threshold_no_healthy_server_means_none():
    p = pool("a", fall=1)
    p.check_result(p.states[0], False, "refused", 1.0)
    assert p.usable() == () and not p.panic


def test_drain_takes_a_server_out_and_reports_once_when_its_last_request_ended():
    p = pool("a", "b", checks=False)
    a, b = p.states
    a.server.load.active = 2
    assert p.set_admin(a, DRAIN, 1.0) is True
    assert names(p.usable()) == ["b"] and a.status == "drain"
    assert p.drained_now() == []
    a.server.load.active = 0
    assert p.drained_now() == [a]
    assert p.drained_now() == []
    assert p.events[-1] == "server a: drained (no request in flight)"
    assert p.set_admin(a, READY, 2.0) is True and names(p.usable()) == ["a", "b"]


def test_an_unknown_admin_state_is_refused():
    p = pool("a")
    try:
        p.set_admin(p.states[0], "sleeping", 0.0)
    except ValueError as exc:
        assert "ready, drain or maint" in str(exc)
    else:
        raise AssertionError("no error")


# -- ejection ------------------------------------------------------------------------------


def test_ejection_grows_with_each_ejection_and_runs_out_by_itself():
    p = pool("a", "b", "c", checks=False, ejection=EjectionPolicy(base=10.0, maximum=25.0, max_percent=50))
    a = p.states[0]
    assert p.eject(a, "5 failed requests in a row", 0.0) is True
    assert names(p.usable()) == ["b", "c"] and a.status == "ejected"
    assert p.eject(a, "again", 1.0) is False  # already out
    assert p.tick(9.9) is False
    assert p.tick(10.0) is True and names(p.usable()) == ["a", "b", "c"]
    assert p.eject(a, "again", 11.0) is True and a.ejected_until == 31.0  # 2 × 10s
    p.tick(31.0)
    assert p.eject(a, "again", 32.0) is True and a.ejected_until == 57.0  # capped at 25s
    p.tick(57.0)
    assert p.eject(a, "after a clean spell", 57.0 + 26.0) is True
    assert a.ejected_until == 57.0 + 26.0 + 10.0  # the count started over


def test_max_ejection_percent_caps_ejections_but_one_server_may_always_go():
    p = pool("a", "b", "c", "d", checks=False, ejection=EjectionPolicy(base=10.0, maximum=60.0, max_percent=25))
    a, b, c, d = p.states
    assert p.eject(a, "x", 0.0) is True
    assert p.eject(b, "x", 0.0) is False  # 2 of 4 would be 50%
    solo = pool("only", checks=False, ejection=EjectionPolicy(max_percent=0))
    assert solo.eject(solo.states[0], "x", 0.0) is True


def test_backups_and_servers_out_of_service_are_not_ejected():
    p = pool("a", "spare", backups=("spare",), checks=False)
    a, spare = p.states
    assert p.eject(spare, "x", 0.0) is False
    p.set_admin(a, MAINT, 0.0)
    assert p.eject(a, "x", 0.0) is False


def test_checks_that_see_the_server_go_down_and_come_back_end_its_ejection():
    p = pool("a", "b", fall=1, rise=1)
    a = p.states[0]
    p.check_result(a, True, "ok", 0.0)
    p.eject(a, "reset", 1.0)
    assert p.check_result(a, True, "ok", 2.0) is False  # checks only ever passed: the ejection stands
    assert a.ejected_until
    p.check_result(a, False, "refused", 3.0)
    assert p.check_result(a, True, "ok", 4.0) is True
    assert a.ejected_until == 0.0 and a.status == "up" and names(p.usable()) == ["a", "b"]
    assert a.reason == "up: ok"


def test_a_failed_check_inside_the_fall_threshold_then_a_pass_ends_an_ejection_too():
    p = pool("a", "b", fall=3, rise=2)
    a = p.states[0]
    p.check_result(a, True, "ok", 0.0)
    p.eject(a, "5 failed requests in a row", 1.0)
    p.check_result(a, False, "refused", 1.1)  # a quick restart: one failed check, never down
    assert a.check.up and a.ejected_until
    assert p.check_result(a, True, "HTTP 200", 1.3) is True
    assert a.status == "up" and a.reason == "ejection over: HTTP 200"


def test_ramping_lists_servers_inside_their_window():
    p = pool("a", "b", fall=1, rise=1)
    a, b = p.states
    assert p.ramping(0.0, 30.0) == {}  # usable from the start: no slow start
    p.check_result(a, False, "x", 1.0)
    p.check_result(a, True, "ok", 5.0)
    assert p.ramping(6.0, 30.0) == {a.server: 5.0}
    assert p.ramping(35.0, 30.0) == {}
