import pytest

from steelyard.sim.builtin import heterogeneous, many_balancers, stale, supermarket
from steelyard.sim.engine import arrival_rate, simulate
from steelyard.sim.scenario import parse_scenario
from tests.sim.recorder import Ledger, Recorder


def scenario(**changes):
    data = {
        "name": "t",
        "algorithms": ["p2c"],
        "requests": 5000,
        "warmup": 500,
        "load": 0.8,
        "servers": [{"name": "s", "count": 4}],
    }
    data.update(changes)
    return parse_scenario(data)


def test_runs_are_deterministic():
    scn = scenario()
    assert simulate(scn, "p2c") == simulate(scn, "p2c")
    assert simulate(scn, "p2c") != simulate(scn.model_copy(update={"seed": 2}), "p2c")


def test_every_measured_request_is_accounted_for():
    scn = scenario(load=1.5, servers=[{"name": "s", "count": 3, "queue": 2}])
    r = simulate(scn, "random")
    assert r.drops > 0 and r.failed == 0
    assert r.served + r.drops + r.failed == r.measured == 5000
    assert sum(r.share.values()) == pytest.approx(1.0)
    assert r.max_queue <= 1 + 2  # one in service, two waiting


def test_arrival_rate_is_load_times_capacity():
    scn = scenario(service={"mean": 0.5}, servers=[{"name": "a", "speed": 2.0, "concurrency": 3}, {"name": "b"}])
    assert arrival_rate(scn, 0.5) == pytest.approx(0.5 * (3 * 2.0 + 1) / 0.5)


def test_the_engine_drives_algorithms_like_the_data_plane():
    Recorder.log = []
    scn = scenario(requests=300, warmup=0, servers=[{"name": "a"}, {"name": "b", "concurrency": 2}])
    r = simulate(scn, "tests.sim.recorder:Recorder")
    picks = [e for e in Recorder.log if e[0] == "pick"]
    dones = [e for e in Recorder.log if e[0] == "done"]
    assert len(picks) >= 300 and len(dones) >= r.served == 300
    clocks = [e[1] for e in Recorder.log]
    assert clocks == sorted(clocks) and clocks[-1] > 0  # the simulated clock, never going back
    assert all(ok and elapsed > 0 for *_, ok, elapsed in dones)
    assert [e[2] for e in picks[:4]] == ["a", "b", "a", "b"]  # round robin, unchanged
    # load.active counts requests at the server; on_done comes after the decrement
    in_flight = {"a": 0, "b": 0}
    for e in Recorder.log:
        if e[0] == "pick":
            assert e[3] == in_flight[e[2]]
            in_flight[e[2]] += 1
        else:
            in_flight[e[2]] -= 1
            assert e[3] == in_flight[e[2]]


def test_every_request_is_accounted_by_its_lease():
    # the data plane's accounting (proxy.lease): served and failed requests, in-flight counts
    Ledger.servers_seen = set()
    scn = scenario(
        requests=5000,
        warmup=0,
        load=1.2,
        servers=[{"name": "s", "count": 3, "queue": 2}],
        outage=[{"server": "s-2", "at": 500.0, "duration": 200.0}],
        balancers={"detect": 20.0},
    )
    r = simulate(scn, "tests.sim.recorder:Ledger")
    loads = [s.load for s in Ledger.servers_seen]
    assert len(loads) == 3 and r.drops > 0 and r.failed > 0
    assert sum(load.active for load in loads) == 0  # every lease ended
    assert sum(load.requests for load in loads) == r.served
    assert sum(load.failures for load in loads) == r.failed + r.drops  # refused or cut: the server's
    assert sum(sum(load.latency) for load in loads) == r.measured


def test_shares_follow_speed_for_adaptive_algorithms_only():
    data = heterogeneous()
    data.update(requests=20_000, warmup=2000)
    scn = parse_scenario(data)
    rr, lc, lt = (simulate(scn, a) for a in ("round_robin", "least_conn", "least_time"))
    assert all(v == pytest.approx(1 / 6, abs=0.001) for v in rr.share.values())
    assert rr.drops > 0  # the slow servers get a third of the requests for a seventh of the capacity
    for r in (lc, lt):
        assert r.share["fast-1"] > r.share["medium-1"] > r.share["slow-1"]
        assert r.drops == 0 and r.mean < rr.mean / 5


def test_least_loaded_with_fresh_information_beats_two_choices():
    data = supermarket(n=20, d=2)
    data.update(requests=20_000, warmup=2000)
    scn = parse_scenario(data)
    assert simulate(scn, "least_conn", 0.9).mean < simulate(scn, "p2c", 0.9).mean


def test_stale_information_makes_least_loaded_herd_and_two_choices_does_not():
    # Mitzenmacher 2000: with a bulletin board refreshed every T, joining the shortest
    # queue sends a whole phase of arrivals to the same few servers
    data = stale(refresh=10.0)
    data.update(requests=30_000, warmup=5000)
    scn = parse_scenario(data)
    least, p2c, rand = (simulate(scn, a) for a in ("least_conn", "p2c", "random"))
    assert least.mean > 2 * p2c.mean
    assert least.mean > rand.mean  # worse than not looking at all
    assert least.max_queue > 3 * p2c.max_queue
    assert p2c.mean < rand.mean


def test_refresh_and_delay_are_applied():
    fresh, old = (
        simulate(scenario(servers=[{"name": "s", "count": 10}], balancers=b), "least_conn")
        for b in ({}, {"refresh": 2.0, "delay": 1.0, "own": False})
    )
    assert old.mean > fresh.mean


def test_several_nodes_each_with_their_own_view():
    data = many_balancers(nodes=5)
    data.update(requests=10_000, warmup=1000)
    scn = parse_scenario(data)
    one = scn.model_copy(update={"balancers": scn.balancers.model_copy(update={"count": 1})})
    r5, r1 = simulate(scn, "least_conn"), simulate(one, "least_conn")
    assert r5.served == r1.served == 10_000
    assert r5.mean > r1.mean  # one node knows every request; five see each other's late


def test_an_outage_fails_the_requests_at_the_server_and_stops_its_traffic():
    scn = scenario(
        requests=20_000,
        load=0.5,
        outage=[{"server": "s-1", "at": 1000.0, "duration": 1e9}],
        servers=[{"name": "s", "count": 4}],
        balancers={"detect": 0.0},
    )
    r = simulate(scn, "round_robin")
    assert 0 < r.failed < 10  # only the requests at s-1 when it failed
    assert r.served + r.failed == r.measured
    assert r.share["s-1"] < 0.1 < r.share["s-2"]


def test_until_health_checks_notice_requests_to_a_failed_server_fail():
    quick, slow = (
        simulate(
            scenario(
                requests=20_000,
                load=0.5,
                servers=[{"name": "s", "count": 4}],
                outage=[{"server": "s-2", "at": 1000.0, "duration": 100.0}],
                balancers={"detect": detect},
            ),
            "round_robin",
        )
        for detect in (0.0, 30.0)
    )
    assert slow.failed > quick.failed + 5
    assert slow.served + slow.failed == slow.measured


def test_random_failures_and_repairs():
    scn = scenario(
        requests=20_000, servers=[{"name": "s", "count": 4, "mtbf": 200.0, "mttr": 20.0}], balancers={"detect": 1.0}
    )
    r = simulate(scn, "least_conn")
    assert r.failed > 0 and r.served + r.failed + r.drops == r.measured
    assert all(v > 0.15 for v in r.share.values())  # every server came back


def test_bursty_arrivals_wait_longer_than_poisson_at_the_same_load():
    calm = simulate(scenario(requests=20_000), "p2c")
    bursty = simulate(
        scenario(requests=20_000, arrivals={"kind": "bursty", "peak": 5.0, "burst_share": 0.1, "burst_length": 20.0}),
        "p2c",
    )
    assert bursty.mean > 1.2 * calm.mean


def test_hashing_algorithms_get_client_addresses():
    r = simulate(scenario(clients=3, servers=[{"name": "s", "count": 8}]), "ip_hash")
    assert sum(1 for v in r.share.values() if v > 0) <= 3
