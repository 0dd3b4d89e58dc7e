"""Cluster-wide least_conn / least_time against local-only, in a deterministic event simulation
(fake clock, seeded): two balancers, a fast and a slow server, each balancer's own ``Server``
objects (own ``ServerLoad``) and the load exchange copying the other's in-flight counts every
``exchange`` seconds, as ``ClusterNode.apply_load`` does."""

from __future__ import annotations

import heapq
import random

from steelyard.core.balancing.base import BalancerOptions, PickContext
from steelyard.core.balancing.cluster_load import CLUSTER_VARIANTS, ClusterLeastTime
from steelyard.core.balancing.least_conn import LeastConn
from steelyard.core.balancing.least_time import LeastTime
from steelyard.core.model import Server

SERVICE = {"fast": 0.010, "slow": 0.100}  # seconds per request


def simulate(
    cls: type, clustered: bool, rates=(300.0, 100.0), seconds: float = 20.0, exchange: float = 0.1, seed: int = 7
) -> dict[str, int]:
    """Requests each server got in ``seconds`` of Poisson arrivals at ``rates`` per node."""
    rng = random.Random(seed)
    now = [0.0]
    nodes = []
    for _ in rates:
        servers = [Server(name, "127.0.0.1", port) for port, name in enumerate(SERVICE, 1)]
        build = CLUSTER_VARIANTS.get(cls, cls) if clustered else cls
        nodes.append((servers, build(servers, rng=rng, clock=lambda: now[0], options=BalancerOptions())))
    events: list = []  # (time, order, kind, node, server index)
    order = 0
    for n, rate in enumerate(rates):
        heapq.heappush(events, (rng.expovariate(rate), order := order + 1, "arrive", n, -1))
    heapq.heappush(events, (exchange, order := order + 1, "exchange", -1, -1))
    got = dict.fromkeys(SERVICE, 0)
    ctx = PickContext("10.0.0.1")
    for _ in range(10**6):  # bounded: ends at ``seconds``
        t, _, kind, n, i = heapq.heappop(events)
        if t > seconds:
            break
        now[0] = t
        if kind == "arrive":
            servers, balancer = nodes[n]
            server = balancer.pick(ctx)
            server.load.active += 1
            got[server.name] += 1
            i = servers.index(server)
            heapq.heappush(events, (t + SERVICE[server.name], order := order + 1, "done", n, i))
            heapq.heappush(events, (t + rng.expovariate(rates[n]), order := order + 1, "arrive", n, -1))
        elif kind == "done":
            server = nodes[n][0][i]
            server.load.active -= 1
            nodes[n][1].on_done(server, True, SERVICE[server.name])
        else:
            if clustered:
                for n, (servers, _) in enumerate(nodes):
                    for i, s in enumerate(servers):
                        others = [nodes[m][0][i].load for m in range(len(nodes)) if m != n]
                        s.load.remote = sum(o.active for o in others)
                        ewmas = [o.ewma for o in others if o.ewma]
                        s.load.remote_ewma = sum(ewmas) / len(ewmas) if ewmas else 0.0
            heapq.heappush(events, (t + exchange, order := order + 1, "exchange", -1, -1))
    return got


def share(got: dict[str, int]) -> float:
    return got["slow"] / sum(got.values())


def test_cluster_wide_least_conn_sends_the_slow_server_less_than_two_local_only_nodes():
    local = simulate(LeastConn, clustered=False)
    cluster = simulate(LeastConn, clustered=True)
    print(
        f"\nleast_conn slow-server share: local-only {share(local):.3f} {local}, "
        f"cluster-wide {share(cluster):.3f} {cluster}"
    )
    assert share(cluster) < share(local)


def test_cluster_wide_least_time_keeps_off_the_slow_server_and_still_probes_it():
    """least_time avoids a slow server by latency already; sharing load must not make it collapse
    (never trying a server) nor flood the slow one."""
    local = simulate(LeastTime, clustered=False)
    cluster = simulate(LeastTime, clustered=True)
    print(
        f"\nleast_time slow-server share: local-only {share(local):.3f} {local}, "
        f"cluster-wide {share(cluster):.3f} {cluster}"
    )
    assert share(cluster) < 0.02 and share(local) < 0.02
    assert cluster["slow"] > 0 and cluster["fast"] > 0  # both still tried


def test_least_time_tries_a_server_busy_elsewhere_that_this_node_never_measured():
    """The collapse guard: others' load alone never prices an unmeasured server out."""
    servers = [Server("measured", "127.0.0.1", 1), Server("new", "127.0.0.1", 2)]
    servers[0].load.ewma, servers[0].load.ewma_stamp = 0.05, 0.0
    servers[1].load.remote = 50  # busy on other nodes, never measured here nor there
    picker = ClusterLeastTime(servers, rng=random.Random(1), clock=lambda: 0.0, options=BalancerOptions())
    assert picker.pick(PickContext()) is servers[1]
    servers[1].load.active = 1  # now in flight here: one probe at a time, as for a lone balancer
    assert picker.pick(PickContext()) is servers[0]
    servers[1].load.remote_ewma = 0.01  # others measured it fast: that cost is used
    servers[1].load.active = 0
    assert picker.pick(PickContext()) is servers[0]  # 0.01 * 51 > 0.05 * 1
    servers[1].load.remote = 2
    assert picker.pick(PickContext()) is servers[1]  # 0.01 * 3 < 0.05


def test_cluster_least_conn_counts_remote_in_flight():
    servers = [Server("a", "127.0.0.1", 1), Server("b", "127.0.0.1", 2)]
    servers[0].load.remote = 3
    servers[1].load.active = 2
    picker = CLUSTER_VARIANTS[LeastConn](servers, rng=random.Random(1), clock=lambda: 0.0, options=BalancerOptions())
    assert picker.pick(PickContext()) is servers[1]
    assert (
        LeastConn(servers, rng=random.Random(1), clock=lambda: 0.0, options=BalancerOptions()).pick(PickContext())
        is servers[0]
    )
