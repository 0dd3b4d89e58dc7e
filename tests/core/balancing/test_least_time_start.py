"""How least_time starts and recovers, in a small simulation (fake clock, seeded arrivals):
a 0.6 ms server and a 7 ms one at 55 requests/s, where every server's first answer takes an
extra 50 ms (connection set-up, cold start) and the fast one has one 50 ms answer later.

The fast server must carry the traffic within a couple of seconds of each of these: both servers
new, the fast one added to a running pool, one slow answer from it. (Before the first-sample and
short-lived peak rules, a server added at runtime got a fifth of the traffic for ~25 s: one slow
first answer set its average, and being avoided it got no samples to correct it.)"""

from __future__ import annotations

import heapq
import random
from collections import Counter

from steelyard.core.balancing.base import PickContext
from steelyard.core.balancing.least_time import LeastTime
from steelyard.core.model import Server

CTX = PickContext("10.0.0.1")
LATENCY = {"fast": 0.0006, "slow": 0.007}
SET_UP = 0.050  # added to every server's first answer


def simulate(build, clock, *, add_fast_at: float = 0.0, spike_at: float = 1e9, seconds: float = 30.0):
    """Picks per second and server: {second: Counter(name -> picks)}."""
    slow, fast = Server("slow", "127.0.0.1", 8001), Server("fast", "127.0.0.1", 8002)
    rng = random.Random(7)
    start = clock.now
    balancer = build(LeastTime, [slow], clock=clock)
    done: list[tuple[float, int, object, float]] = []  # (when, seq, server, elapsed)
    answered: Counter = Counter()
    per_second: dict[int, Counter] = {}
    t, seq, added, spiked = 0.0, 0, False, False
    while t < seconds:
        t += rng.expovariate(55.0)
        while done and done[0][0] <= t:
            when, _, server, elapsed = heapq.heappop(done)
            clock.now = start + when
            server.load.active -= 1
            balancer.on_done(server, True, elapsed)
        clock.now = start + t
        if not added and t >= add_fast_at:  # a new snapshot: the same servers' loads carry over
            balancer, added = build(LeastTime, [slow, fast], clock=clock), True
        server = balancer.pick(CTX)
        server.load.active += 1
        elapsed = LATENCY[server.name]
        if not answered[server.name]:
            elapsed += SET_UP
        elif server is fast and t >= spike_at and not spiked:
            elapsed, spiked = SET_UP, True
        answered[server.name] += 1
        seq += 1
        heapq.heappush(done, (t + elapsed, seq, server, elapsed))
        per_second.setdefault(int(t), Counter())[server.name] += 1
    return per_second


def fast_share(per_second, first: int, last: int) -> float:
    """The fast server's lowest share of any one second from ``first`` to ``last``."""
    return min(per_second[s]["fast"] / sum(per_second[s].values()) for s in range(first, last + 1))


def test_two_new_servers_the_fast_one_carries_the_traffic_from_the_first_seconds(build, clock):
    per_second = simulate(build, clock)
    assert fast_share(per_second, 1, 29) >= 0.9


def test_a_fast_server_added_to_a_running_pool_takes_over_within_two_seconds(build, clock):
    per_second = simulate(build, clock, add_fast_at=5.0)
    assert sum(per_second[s]["fast"] for s in range(5)) == 0
    assert fast_share(per_second, 7, 29) >= 0.9


def test_one_slow_answer_from_the_fast_server_is_forgotten_within_three_seconds(build, clock):
    per_second = simulate(build, clock, spike_at=15.0)
    assert fast_share(per_second, 1, 14) >= 0.9
    assert per_second[15]["slow"] > per_second[15]["fast"]  # (the peak is honoured at once)
    assert fast_share(per_second, 18, 29) >= 0.9
