"""The discrete-event engine: one algorithm, one scenario, one load -> ``RunResult``.

Model (invariants the loop keeps):

- Simulated time only; a heap of ``(time, seq, kind, server, payload, tag)`` events,
  ``seq`` breaking ties so runs are deterministic (the order of events depends on
  nothing else, so the heap's inner layout does not matter). Arrivals are a separate
  stream merged with the heap, so an arrival costs no heap operation; an end of
  service that starts the next waiting request replaces itself at the heap's top.
- A server holds ``count`` requests: up to ``concurrency`` in service, the rest waiting
  FIFO (at most ``queue``; an arrival beyond it is dropped). Queue length is
  ``count`` (in service + waiting), the quantity of Mitzenmacher's supermarket model.
- A request's work is drawn at arrival from one service stream, in arrival order,
  and divided by the speed of the server it goes to; arrivals, service, routing and
  failures each draw from their own ``random.Random`` seeded from the scenario seed,
  so every algorithm sees the same arrivals and the same work (common random numbers).
- Balancer nodes (``nodes.py``) pick with the ``core`` algorithm classes through
  their interface; ``clock`` is the simulated clock. The engine is their data plane:
  every request that a node picks a server for is a ``nodes.Request``, a
  ``proxy.lease.Lease`` taken when it is sent (``load.active`` +1) and settled when
  it ends (-1, then the balancer's ``on_done(server, ok, elapsed)``), exactly once;
  one sent to a failed or full server is settled at once as failed (elapsed 0).
  The engine moves no load record itself. A ``Request`` that ended is reused for a
  later arrival (not one cut by a failure: the heap may still hold its departure).
- A failure ends every request at the server as failed (``settle(False)``) and
  later departures of theirs are ignored (the server's epoch moved);
  health checks notice failures and returns ``detect`` seconds later, when each node
  rebuilds its balancer over the servers then healthy (as ``PoolRuntime.publish``).
  A request sent to a failed server before that fails at once.
- The first ``warmup`` arrivals are not measured; the next ``requests`` are, and the
  run ends when every measured request has ended (arrivals stop after the last one).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush, heapreplace
from math import inf

from ..core.balancing import PickContext, resolve_algorithm
from .distributions import arrival_sampler, service_mean, service_sampler
from .nodes import Request, make_nodes
from .results import RunResult, summarize
from .scenario import Scenario
from .theory import expected_mean

DEPART, REFRESH, DELIVER, FAIL, RECOVER, HEALTH = range(6)
PROGRESS_EVERY = 1 << 14  # arrivals between two progress reports
NO_LIMIT = 1 << 62


def label(scenario: Scenario, algorithm: str) -> str:
    """How an algorithm is shown: p2c with d ≠ 2 choices says its d."""
    d = scenario.options.choices
    return f"{algorithm} d={d}" if algorithm == "p2c" and d != 2 else algorithm


def arrival_rate(scenario: Scenario, load: float) -> float:
    """Arrivals per second that make ``load`` the offered load of the scenario's servers."""
    capacity = sum(g.count * g.concurrency * g.speed for g in scenario.servers)
    return load * capacity / service_mean(scenario.service)


def simulate(
    scenario: Scenario, algorithm: str, load: float | None = None, progress: Callable[[int], None] | None = None
) -> RunResult:
    """Run ``algorithm`` under ``scenario`` at ``load`` (default: the scenario's)."""
    scn = scenario
    load = scn.load if load is None else load
    groups = [(name, g) for g in scn.servers for name in g.server_names()]
    names = [name for name, _ in groups]
    speed = [g.speed for _, g in groups]
    conc = [g.concurrency for _, g in groups]
    qlimit = [NO_LIMIT if g.queue is None else g.queue for _, g in groups]
    n = len(names)
    seed = scn.seed

    now = 0.0

    def clock() -> float:
        return now

    bs = scn.balancers
    shared = bs.refresh == 0.0
    nodes = make_nodes(
        resolve_algorithm(algorithm),
        names,
        [g.weight for _, g in groups],
        count=bs.count,
        shared=shared,
        own=bs.own,
        seed=seed,
        clock=clock,
        options=scn.options.balancer_options(),
    )
    next_arrival = arrival_sampler(scn.arrivals, arrival_rate(scn, load), random.Random(f"{seed}/arrivals"))
    draw = service_sampler(scn.service, random.Random(f"{seed}/service"))
    route = random.Random(f"{seed}/route").randrange  # which node, which client
    fail_rng = random.Random(f"{seed}/failures")

    hashing = algorithm in ("ip_hash", "consistent_hash") or ":" in algorithm
    ctxs = [PickContext(f"10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}") for c in range(scn.clients)]
    ctx0 = ctxs[0]
    n_clients = len(ctxs)
    n_nodes = len(nodes)
    node0 = nodes[0]
    track = node0.track  # (the same for every node)
    spare: list[Request] = []  # requests that ended, to reuse: no allocation per request

    count = [0] * n  # requests at each server (truth)
    busy = [0] * n  # of those, in service
    waiting: list[deque[Request]] = [deque() for _ in range(n)]
    in_service: list[list[Request]] = [[] for _ in range(n)]
    up = [True] * n
    healthy = [True] * n
    epoch = [0] * n
    sent = [0] * n
    maxq = [0] * n
    times: list[float] = []
    drops = failed = 0

    heap: list[tuple] = []
    seq = 0
    by_name = {name: i for i, name in enumerate(names)}
    for i, (_, g) in enumerate(groups):
        if g.mtbf is not None:
            seq += 1
            heappush(heap, (fail_rng.expovariate(1.0 / g.mtbf), seq, FAIL, i, None, 0))
    for outage in scn.outages:
        seq += 1
        heappush(heap, (outage.at, seq, FAIL, by_name[outage.server], outage.duration, 0))
    track_service = bool(heap)  # failures need the requests in service at hand
    if not shared:
        seq += 1
        heappush(heap, (bs.refresh, seq, REFRESH, 0, None, 0))

    warm = scn.warmup
    total = warm + scn.requests
    goal = scn.requests
    arrived = done = events = 0
    reported = 0
    t_next = next_arrival(0.0)

    while done < goal:
        events += 1
        if heap and heap[0][0] < t_next:
            t, _, kind, i, req, tag = heap[0]  # (popped below: a departure may replace it instead)
            now = t
            if kind == DEPART:
                if tag != epoch[i]:
                    heappop(heap)
                    continue  # ended by a failure already
                count[i] -= 1
                req.settle(True, t)
                if track:
                    req.pool.own_inflight[i] -= 1  # type: ignore[union-attr]  # (the node it was sent by)
                if track_service:
                    in_service[i].remove(req)
                if req.measured:
                    times.append(t - req.t_start)
                    done += 1
                spare.append(req)
                w = waiting[i]
                if w:
                    nxt = w.popleft()
                    seq += 1
                    heapreplace(heap, (t + nxt.work, seq, DEPART, i, nxt, tag))  # (one sift, not two)
                    if track_service:
                        in_service[i].append(nxt)
                else:
                    busy[i] -= 1
                    heappop(heap)
                continue
            heappop(heap)
            if kind == REFRESH or kind == DELIVER:
                if kind == REFRESH:
                    snapshot = (tuple(count), [tuple(nd.own_inflight) if nd.track else None for nd in nodes])
                    seq += 1
                    heappush(heap, (t + bs.refresh, seq, REFRESH, 0, None, 0))
                    if bs.delay:
                        seq += 1
                        heappush(heap, (t + bs.delay, seq, DELIVER, 0, snapshot, 0))
                        continue
                else:
                    snapshot = req
                for nd, own in zip(nodes, snapshot[1]):
                    nd.apply(snapshot[0], own)
            elif kind == FAIL:
                if not up[i]:
                    continue  # overlapping outages: the first one rules
                up[i] = False
                epoch[i] += 1
                victims = in_service[i] + list(waiting[i])
                in_service[i] = []
                waiting[i].clear()
                busy[i] = 0
                count[i] = 0
                for r in victims:  # (not reused: the heap may still hold their departures)
                    r.settle(False, t)
                    if track:
                        r.pool.own_inflight[i] -= 1  # type: ignore[union-attr]
                    if r.measured:
                        failed += 1
                        done += 1
                mtbf = groups[i][1].mtbf
                back = req if req is not None else fail_rng.expovariate(1.0 / groups[i][1].mttr)
                seq += 1
                heappush(heap, (t + back, seq, RECOVER, i, req is None and mtbf, 0))
                seq += 1
                heappush(heap, (t + bs.detect, seq, HEALTH, i, False, 0))
            elif kind == RECOVER:
                up[i] = True
                if req:  # a random failure schedules the next one
                    seq += 1
                    heappush(heap, (t + fail_rng.expovariate(1.0 / req), seq, FAIL, i, None, 0))
                seq += 1
                heappush(heap, (t + bs.detect, seq, HEALTH, i, True, 0))
            elif kind == HEALTH:
                if healthy[i] != req:
                    healthy[i] = req
                    for nd in nodes:
                        nd.publish(healthy)
            continue

        # an arrival
        now = t = t_next
        arrived += 1
        measured = arrived > warm
        t_next = next_arrival(t) if arrived < total else inf
        node = nodes[route(n_nodes)] if n_nodes > 1 else node0
        s = node.balancer.pick(ctxs[route(n_clients)] if hashing else ctx0)
        work = draw()
        if progress is not None and arrived - reported >= PROGRESS_EVERY:
            progress(arrived - reported)
            reported = arrived
        if s is None:
            if measured:
                drops += 1
                done += 1
            continue
        i = node.index[s]
        if measured:
            sent[i] += 1
        if spare:
            req = spare.pop()
            req.work = work / speed[i]
            req.measured = measured
        else:
            req = Request(work / speed[i], measured)
        req.take(node, node.held[i], t)  # type: ignore[arg-type]  # (the node plays the pool's part)
        c = count[i]
        if not up[i] or c - busy[i] >= qlimit[i]:
            req.settle(False, t)  # refused at once: the server's failure, in no time
            spare.append(req)
            if measured:
                done += 1
                if up[i]:
                    drops += 1
                else:
                    failed += 1
            continue
        if busy[i] < conc[i]:
            busy[i] += 1
            seq += 1
            heappush(heap, (t + req.work, seq, DEPART, i, req, epoch[i]))
            if track_service:
                in_service[i].append(req)
        else:
            waiting[i].append(req)
        c += 1
        count[i] = c
        if track:
            node.own_inflight[i] += 1
        if measured and c > maxq[i]:
            maxq[i] = c

    if progress is not None and arrived > reported:
        progress(arrived - reported)
    mean, p50, p99, p999 = summarize(times)
    return RunResult(
        scenario=scn.name,
        algorithm=algorithm,
        label=label(scn, algorithm),
        load=load,
        measured=goal,
        served=len(times),
        mean=mean,
        p50=p50,
        p99=p99,
        p999=p999,
        max_queue=max(maxq),
        drops=drops,
        failed=failed,
        share={name: sent[i] / goal for i, name in enumerate(names)},
        events=events,
        sim_time=now,
        theory=expected_mean(scn, algorithm, load),
    )
