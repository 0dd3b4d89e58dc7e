"""``/metrics``: Prometheus text, built at scrape time from the counters the data plane keeps
anyway (``ServerLoad``) and the control plane's state. Nothing here runs per request.

Families (labels): ``steelyard_requests_total`` (pool, server, class: 1xx..5xx responses a server
gave), ``steelyard_failures_total`` (pool, server: connect failures, resets, timeouts),
``steelyard_active_requests`` (pool, server), ``steelyard_server_usable`` (pool, server: 1 when
in the published set), ``steelyard_server_up`` (pool, server: the checks' view),
``steelyard_ejections_total`` (pool, server), ``steelyard_retries_total`` (pool),
``steelyard_queue_depth`` (pool), ``steelyard_responses_total`` (pool, code: answers steelyard
wrote itself: 502, 503, 504, ...), ``steelyard_response_bytes_total`` and
``steelyard_request_bytes_total`` (pool, server: bytes of responses as servers sent them, of
requests as sent to them), ``steelyard_response_seconds`` (pool, server: histogram of the time
from sending a request to its end), ``steelyard_dns_queries_total`` (listener, name, type,
rcode; names other than the zone's records count as "other"), ``steelyard_cluster_degraded`` (node;
with ``[cluster]``: 1 while Redis cannot be reached).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..core.model import LATENCY_BOUNDS

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class _Collector:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self):  # noqa: C901  (one family after another)
        rt = self.runtime
        requests = CounterMetricFamily(
            "steelyard_requests", "Responses servers gave, by status class", labels=["pool", "server", "class"]
        )
        failures = CounterMetricFamily(
            "steelyard_failures", "Requests a server failed (connect, reset, timeout)", labels=["pool", "server"]
        )
        active = GaugeMetricFamily("steelyard_active_requests", "Requests in flight", labels=["pool", "server"])
        usable = GaugeMetricFamily(
            "steelyard_server_usable", "1 when the balancer may pick the server", labels=["pool", "server"]
        )
        up = GaugeMetricFamily("steelyard_server_up", "1 when active checks (if any) say up", labels=["pool", "server"])
        ejections = CounterMetricFamily("steelyard_ejections", "Passive-health ejections", labels=["pool", "server"])
        retries = CounterMetricFamily("steelyard_retries", "Requests sent again to another server", labels=["pool"])
        queued = GaugeMetricFamily(
            "steelyard_queue_depth", "Requests waiting for a server below max_conns", labels=["pool"]
        )
        answers = CounterMetricFamily(
            "steelyard_responses", "Error responses steelyard wrote itself", labels=["pool", "code"]
        )
        sizes = CounterMetricFamily(
            "steelyard_response_bytes", "Bytes of responses received from servers", labels=["pool", "server"]
        )
        sent = CounterMetricFamily(
            "steelyard_request_bytes",
            "Bytes of requests sent to servers (heads as forwarded, bodies as received)",
            labels=["pool", "server"],
        )
        latency = HistogramMetricFamily(
            "steelyard_response_seconds", "Time from sending a request to its end", labels=["pool", "server"]
        )
        for pool_name, keeper in rt.health.items():
            pool = keeper.pool
            published = set(pool.snapshot.servers)
            for st in keeper.health.states:
                s, load = st.server, st.server.load
                labels = [pool_name, s.name]
                counted = load.by_class
                for i, cls in enumerate(CLASSES, 1):  # (2xx are not counted per request: the rest of them)
                    n = counted[i] if i != 2 else load.requests - sum(counted[1:]) + counted[2]
                    requests.add_metric([*labels, cls], n)
                failures.add_metric(labels, load.failures)
                sizes.add_metric(labels, load.resp_bytes)
                sent.add_metric(labels, load.req_bytes)
                active.add_metric(labels, load.active)
                usable.add_metric(labels, 1 if s in published else 0)
                up.add_metric(labels, 1 if st.check is None or st.check.up else 0)
                ejections.add_metric(labels, st.ejected_total)
                buckets, total = [], 0
                for bound, count in zip(LATENCY_BOUNDS, load.latency):
                    total += count
                    buckets.append((repr(bound), total))
                buckets.append(("+Inf", total + load.latency[-1]))
                latency.add_metric(labels, buckets, load.latency_sum)
            retries.add_metric([pool_name], pool.retried_total)
            queued.add_metric([pool_name], rt.queue_depth(pool_name))
            for code, count in sorted(pool.answered.items()):
                answers.add_metric([pool_name, str(code)], count)
        dns_queries = CounterMetricFamily(
            "steelyard_dns_queries",
            "DNS queries answered (or refused) by name, type and rcode",
            labels=["listener", "name", "type", "rcode"],
        )
        for listener_name, listener in getattr(rt, "dns", {}).items():
            for (qname, qtype, rcode), count in sorted(listener.service.stats.items()):
                dns_queries.add_metric([listener_name, qname, qtype, rcode], count)
        yield from (
            requests,
            failures,
            active,
            usable,
            up,
            ejections,
            retries,
            queued,
            answers,
            sizes,
            sent,
            latency,
            dns_queries,
        )
        if getattr(rt, "cluster", None) is not None:
            degraded = GaugeMetricFamily(
                "steelyard_cluster_degraded",
                "1 while Redis (the cluster's shared state) cannot be reached",
                labels=["node"],
            )
            degraded.add_metric([rt.cluster.node], 1 if rt.cluster.degraded else 0)
            yield degraded


def metrics_text(runtime: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(runtime))
    return generate_latest(registry)
