from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.ip_hash import IpHash

IPS = [f"10.{i // 250}.{i % 250}.7" for i in range(2000)]


def mapping(balancer):
    return {ip: balancer.pick(PickContext(ip)).name for ip in IPS}


def test_a_client_sticks_to_one_server_and_the_key_is_ignored(make_servers, build):
    ih = build(IpHash, make_servers(1, 1, 1))
    for ip in IPS[:100]:
        home = ih.pick(PickContext(ip))
        assert ih.pick(PickContext(ip, "some-key")) is home
        assert ih.pick(PickContext(ip, "other-key")) is home


def test_stable_across_rebuilds_with_the_same_servers(make_servers, build):
    assert mapping(build(IpHash, make_servers(1, 1, 1, 1))) == mapping(build(IpHash, make_servers(1, 1, 1, 1)[::-1]))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 10), st.data())
def test_removing_one_of_n_servers_remaps_about_one_nth_of_clients(make_servers, build, n, data):
    servers = make_servers(*[1] * n)
    gone = data.draw(st.integers(0, n - 1))
    before = mapping(build(IpHash, servers))
    after = mapping(build(IpHash, servers[:gone] + servers[gone + 1 :]))
    moved = [ip for ip in IPS if before[ip] != after[ip]]
    assert {ip for ip in IPS if before[ip] == servers[gone].name} <= set(moved)
    assert len(moved) <= (1 / n + 0.1) * len(IPS)


def test_weights_shift_shares(make_servers, build):
    shares = Counter(mapping(build(IpHash, make_servers(1, 4))).values())
    assert abs(shares["b"] / len(IPS) - 0.8) < 0.04


def test_exclude_never_returns_an_excluded_server(make_servers, build):
    servers = make_servers(1, 1, 1)
    ih = build(IpHash, servers)
    for ip in IPS[:200]:
        ctx = PickContext(ip)
        assert ih.pick(ctx, {ih.pick(ctx)}) not in (None, ih.pick(ctx))
        assert ih.pick(ctx, servers) is None
