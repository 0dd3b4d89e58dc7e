"""``/metrics``: Prometheus text, built at scrape time from the counters the data plane keeps
anyway (``ServerLoad``, the listeners' counters) and the control plane's state. Nothing here
runs per request. Names follow HAProxy's Prometheus exporter with ``steelyard_`` for
``haproxy_`` (frontend = a listener, backend = a pool); docs/operations.md lists every family.

Every counter only grows: reloads keep them (servers by name, pools, listeners) and, with
workers, the control process adds what exited workers counted to what live ones report.

Families (labels):
- frontend (listener): ``steelyard_frontend_connections_total``,
  ``steelyard_frontend_current_sessions``, ``steelyard_frontend_http_requests_total``,
  ``steelyard_frontend_http_responses_total`` (code: 1xx..5xx, other),
  ``steelyard_frontend_bytes_in_total``, ``steelyard_frontend_bytes_out_total``.
- backend (pool): ``steelyard_backend_http_responses_total`` (code: its servers' responses and
  steelyard's own answers), ``steelyard_backend_internal_responses_total`` (code: the exact
  status steelyard wrote itself: 502, 503, 504, ...), ``steelyard_backend_retry_warnings_total``,
  ``steelyard_backend_current_queue``, ``steelyard_backend_current_sessions``,
  ``steelyard_backend_active_servers`` (usable now).
- server (pool, server): ``steelyard_server_http_responses_total`` (code),
  ``steelyard_server_failures_total`` (connect failures, resets, timeouts),
  ``steelyard_server_current_sessions``, ``steelyard_server_bytes_in_total`` (requests as sent
  to it), ``steelyard_server_bytes_out_total`` (responses as it sent them),
  ``steelyard_server_response_time_seconds`` (histogram: sending a request to its end),
  ``steelyard_server_status`` (state: up, down, ejected, drain, maint; 1 for the current one),
  ``steelyard_server_weight``, ``steelyard_server_usable``, ``steelyard_server_check_up``,
  ``steelyard_server_ejections_total``.
- process: ``steelyard_build_info`` (version, python), ``steelyard_reloads_total`` (outcome),
  ``steelyard_last_reload_successful``, ``steelyard_last_reload_timestamp_seconds``,
  ``steelyard_workers`` and ``steelyard_worker_restarts_total`` (with workers), and
  prometheus_client's ``process_*`` of the process that answers (the control process).
- others: ``steelyard_dns_queries_total`` (listener, name, type, rcode),
  ``steelyard_cluster_degraded`` (node; with ``[cluster]``).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .. import __version__
from ..core.model import LATENCY_BOUNDS

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
STATES = ("up", "down", "ejected", "drain", "maint")


def server_classes(load: Any) -> list[int]:
    """Responses by class 1xx..5xx (2xx are not counted per request: the rest of them)."""
    counted = load.by_class
    return [counted[i] if i != 2 else load.requests - sum(counted[1:]) + counted[2] for i in range(1, 6)]


def frontend_rows(rt: Any) -> dict[str, tuple[list, int]]:
    """Listener name -> ([accepted, requests, bytes_in, bytes_out, codes...], open connections)."""
    from ..workers.channel import listener_row

    hub = rt.hub
    if hub is not None:
        return {
            name: (hub.listener_totals.get(name) or listener_row(None), hub.open.get(name, 0)) for name in rt.listeners
        }
    return {name: (listener_row(lst), len(getattr(lst, "connections", ()))) for name, lst in rt.listeners.items()}


def _frontends(rt: Any) -> Iterator[Metric]:
    lab = ["listener"]
    conns = CounterMetricFamily("steelyard_frontend_connections", "Client connections accepted", labels=lab)
    current = GaugeMetricFamily("steelyard_frontend_current_sessions", "Client connections open now", labels=lab)
    requests = CounterMetricFamily("steelyard_frontend_http_requests", "HTTP requests received", labels=lab)
    responses = CounterMetricFamily(
        "steelyard_frontend_http_responses", "HTTP responses sent to clients, by class", labels=[*lab, "code"]
    )
    bytes_in = CounterMetricFamily("steelyard_frontend_bytes_in", "Bytes received from clients (HTTP)", labels=lab)
    bytes_out = CounterMetricFamily(
        "steelyard_frontend_bytes_out", "Bytes of responses sent to clients (HTTP)", labels=lab
    )
    for name, (row, open_now) in frontend_rows(rt).items():
        conns.add_metric([name], row[0])
        current.add_metric([name], open_now)
        if rt.listeners[name].mode != "http":
            continue
        requests.add_metric([name], row[1])
        bytes_in.add_metric([name], row[2])
        bytes_out.add_metric([name], row[3])
        codes = row[4:]
        for i, cls in enumerate(CLASSES, 1):
            responses.add_metric([name, cls], codes[i])
        responses.add_metric([name, "other"], codes[0] + sum(codes[6:]))
    yield from (conns, current, requests, responses, bytes_in, bytes_out)


def _backends_and_servers(rt: Any) -> Iterator[Metric]:  # noqa: C901  (one family after another)
    lab, slab = ["pool"], ["pool", "server"]
    b_resp = CounterMetricFamily(
        "steelyard_backend_http_responses",
        "HTTP responses for the pool: its servers' and steelyard's own, by class",
        labels=[*lab, "code"],
    )
    b_internal = CounterMetricFamily(
        "steelyard_backend_internal_responses",
        "Responses steelyard wrote itself for the pool (502, 503, 504, ...), by status",
        labels=[*lab, "code"],
    )
    b_retries = CounterMetricFamily(
        "steelyard_backend_retry_warnings", "Requests sent again to another server", labels=lab
    )
    b_queue = GaugeMetricFamily(
        "steelyard_backend_current_queue", "Requests waiting for a server below max_conns", labels=lab
    )
    b_active = GaugeMetricFamily("steelyard_backend_current_sessions", "Requests in flight to the pool", labels=lab)
    b_usable = GaugeMetricFamily("steelyard_backend_active_servers", "Servers the balancer may pick now", labels=lab)
    s_resp = CounterMetricFamily(
        "steelyard_server_http_responses", "HTTP responses the server gave, by class", labels=[*slab, "code"]
    )
    s_fail = CounterMetricFamily(
        "steelyard_server_failures", "Requests the server failed (connect, reset, timeout)", labels=slab
    )
    s_active = GaugeMetricFamily(
        "steelyard_server_current_sessions", "Requests (or connections) in flight", labels=slab
    )
    s_in = CounterMetricFamily(
        "steelyard_server_bytes_in", "Bytes of requests sent to the server (heads as forwarded)", labels=slab
    )
    s_out = CounterMetricFamily("steelyard_server_bytes_out", "Bytes of responses the server sent", labels=slab)
    s_time = HistogramMetricFamily(
        "steelyard_server_response_time_seconds", "Time from sending a request to its end", labels=slab
    )
    s_status = GaugeMetricFamily("steelyard_server_status", "1 for the server's current state", labels=[*slab, "state"])
    s_weight = GaugeMetricFamily("steelyard_server_weight", "The server's weight", labels=slab)
    s_usable = GaugeMetricFamily("steelyard_server_usable", "1 when the balancer may pick the server", labels=slab)
    s_up = GaugeMetricFamily("steelyard_server_check_up", "1 when active checks (if any) say up", labels=slab)
    s_eject = CounterMetricFamily("steelyard_server_ejections", "Passive-health ejections", labels=slab)
    for pool_name, keeper in rt.health.items():
        pool = keeper.pool
        published = set(pool.snapshot.servers)
        by_class = [0] * 5
        in_flight = 0
        for st in keeper.health.states:
            s, load = st.server, st.server.load
            labels = [pool_name, s.name]
            for i, (cls, n) in enumerate(zip(CLASSES, server_classes(load))):
                s_resp.add_metric([*labels, cls], n)
                by_class[i] += n
            in_flight += load.active
            s_fail.add_metric(labels, load.failures)
            s_in.add_metric(labels, load.req_bytes)
            s_out.add_metric(labels, load.resp_bytes)
            s_active.add_metric(labels, load.active)
            status = st.status
            for state in STATES:
                s_status.add_metric([*labels, state], 1 if status == state else 0)
            s_weight.add_metric(labels, s.weight)
            s_usable.add_metric(labels, 1 if s in published else 0)
            s_up.add_metric(labels, 1 if st.check is None or st.check.up else 0)
            s_eject.add_metric(labels, st.ejected_total)
            buckets, total = [], 0
            for bound, count in zip(LATENCY_BOUNDS, load.latency):
                total += count
                buckets.append((repr(bound), total))
            buckets.append(("+Inf", total + load.latency[-1]))
            s_time.add_metric(labels, buckets, load.latency_sum)
        for code, count in sorted(pool.answered.items()):
            b_internal.add_metric([pool_name, str(code)], count)
            if 100 <= code < 600:
                by_class[code // 100 - 1] += count
        for cls, n in zip(CLASSES, by_class):
            b_resp.add_metric([pool_name, cls], n)
        b_retries.add_metric([pool_name], pool.retried_total)
        b_queue.add_metric([pool_name], rt.queue_depth(pool_name))
        b_active.add_metric([pool_name], in_flight)
        b_usable.add_metric([pool_name], len(published))
    yield from (b_resp, b_internal, b_retries, b_queue, b_active, b_usable)
    yield from (s_resp, s_fail, s_active, s_in, s_out, s_time, s_status, s_weight, s_usable, s_up, s_eject)


def _process(rt: Any) -> Iterator[Metric]:
    info = GaugeMetricFamily("steelyard_build_info", "steelyard's version", labels=["version", "python"])
    info.add_metric([__version__, platform.python_version()], 1)
    yield info
    reloads = CounterMetricFamily("steelyard_reloads", "Reloads asked for (SIGHUP, the API)", labels=["outcome"])
    for outcome, n in sorted(getattr(rt, "reloads", {}).items()):
        reloads.add_metric([outcome], n)
    yield reloads
    last = getattr(rt, "last_reload", None)
    ok = GaugeMetricFamily("steelyard_last_reload_successful", "0 when the last reload was refused or failed")
    ok.add_metric([], 1 if last is None or last[0] else 0)
    yield ok
    if last is not None:
        when = GaugeMetricFamily("steelyard_last_reload_timestamp_seconds", "When the last reload was asked for")
        when.add_metric([], last[1])
        yield when
    hub = getattr(rt, "hub", None)
    if hub is not None:
        workers = GaugeMetricFamily("steelyard_workers", "Worker processes serving")
        workers.add_metric([], hub.count)
        restarts = CounterMetricFamily("steelyard_worker_restarts", "Workers started again after they died")
        restarts.add_metric([], hub.restarts)
        yield from (workers, restarts)


class _Collector:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        yield from _frontends(rt)
        yield from _backends_and_servers(rt)
        dns_queries = CounterMetricFamily(
            "steelyard_dns_queries",
            "DNS queries answered (or refused) by name, type and rcode",
            labels=["listener", "name", "type", "rcode"],
        )
        for listener_name, listener in getattr(rt, "dns", {}).items():
            for (qname, qtype, rcode), count in sorted(listener.service.stats.items()):
                dns_queries.add_metric([listener_name, qname, qtype, rcode], count)
        yield dns_queries
        yield from _process(rt)
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
    ProcessCollector(registry=registry)
    return generate_latest(registry)
