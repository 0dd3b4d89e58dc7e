"""``steelyard check``'s one-screen summary of a validated configuration.

It says what the balancer will do in the operator's words: every listener (with TLS, limits and
routes), every pool (algorithm, availability, stickiness, servers), the admin API, DNS zones,
the cluster and the floating address. Durations print in the syntax the file uses.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..units import format_duration


def _listener_notes(ls: Any) -> str:
    d = format_duration
    if ls.mode == "tcp":
        return (
            f"idle {d(ls.idle_timeout)}"
            + (f", PROXY protocol {ls.send_proxy}" if ls.send_proxy else "")
            + ("" if ls.splice else ", no splice")
        )
    if ls.mode == "udp":
        each = "datagram" if ls.per_datagram else "flow"
        return f"balanced per {each}, flows idle {d(ls.idle_timeout)}, at most {ls.max_flows} flows"
    return f"keep-alive {d(ls.keepalive_timeout)}, request head {d(ls.request_timeout)}"


def describe(config: Any) -> str:
    """A one-screen plain-text summary, for ``steelyard check``."""
    d = format_duration
    lines = [
        f"{config.source or '<string>'}: {len(config.listeners)} listener(s), {len(config.pools)} pool(s), "
        f"{config.workers} worker(s), shutdown grace {d(config.shutdown_grace)}",
        "",
        "listeners",
    ]
    for ls in config.listeners:
        lines.append(f"  {ls.name}  {ls.mode} on {ls.bind}  → pool {ls.pool}  ({_listener_notes(ls)})")
        lines += [f"    {line}" for line in _listener_extras(ls)]
        for n, r in enumerate(ls.routes, 1):
            conds = [
                f"host {r.host}" if r.host else "",
                f"path {r.path_prefix}*" if r.path_prefix else "",
                f"header {r.header.name}: {r.header.value}" if r.header else "",
            ]
            filters = f"  filters {', '.join(f.use for f in r.filters)}" if r.filters else ""
            lines.append(f"    route {n}: {', '.join(filter(None, conds))}  → pool {r.pool}{filters}")
    lines += ["", "pools"]
    for p in config.pools:
        hashing = "hash" in p.algorithm or ":" in p.algorithm or p.hash_on != "client_ip"
        notes = [
            f"hash on {p.hash_on}" if hashing else "",
            f"balance factor {p.hash_balance_factor:g}" if p.hash_balance_factor else "",
            f"ewma decay {d(p.ewma_decay)}" if p.algorithm == "least_time" else "",
            f"connect {d(p.connect_timeout)}",
            f"timeout {d(p.timeout)}",
            f"{p.max_idle} idle for {d(p.idle_timeout)}",
        ]
        lines.append(f"  {p.name}  {p.algorithm}  ({', '.join(filter(None, notes))})")
        lines += [f"    {line}" for line in _availability(p)]
        if p.sticky is not None:
            lines.append(f"    {_sticky(p.sticky)}")
        if p.tls:
            lines.append(f"    upstream TLS{' (certificates verified)' if p.tls_verify else ' (NOT verified)'}")
        for s in p.servers:
            extra = [
                f"weight {s.weight}",
                "backup" if s.backup else "",
                s.state if s.state != "ready" else "",
                f"max {s.max_conns} in flight" if s.max_conns else "",
            ]
            name = s.address if s.name == s.address else f"{s.name} {s.address}"
            lines.append(f"    server {name}  {', '.join(filter(None, extra))}")
    lines += _control(config)
    return "\n".join(lines)


def _listener_extras(ls: Any) -> list[str]:
    """TLS, the redirect, limits, access log and SNI routes of one listener."""
    out = []
    if ls.tls is not None:
        certs = ([ls.tls.cert] if ls.tls.cert else []) + [
            f"{c.cert} for {', '.join(c.names) or 'the default'}" for c in ls.tls.certificates
        ]
        out.append(f"TLS {ls.tls.min_version}+ with {len(certs)} certificate(s): {'; '.join(certs)}")
    if ls.redirect_https:
        out.append(f"redirects every request to https:// (port {ls.https_port})")
    limits = [
        f"{ls.max_connections} connections" if ls.max_connections else "",
        f"{ls.max_connections_per_client} per client" if ls.max_connections_per_client else "",
        f"bodies up to {ls.max_body_size} bytes" if ls.max_body_size else "",
        f"{ls.rate_limit.rate:g} requests/s per client (burst {ls.rate_limit.bucket_size})" if ls.rate_limit else "",
    ]
    if any(limits):
        out.append("limits: " + ", ".join(filter(None, limits)))
    if ls.filters:
        out.append(f"filters: {', '.join(f.use for f in ls.filters)}")
    if ls.access_log:
        out.append(f"access log: {'standard output' if ls.access_log == '-' else ls.access_log}")
    out += [f"sni {r.name}  → pool {r.pool}" for r in ls.sni]
    return out


def _sticky(st: Any) -> str:
    d = format_duration
    if st.mode == "source":
        what = f"sticky by client address (table of {st.table_size}, entries expire after {d(st.expire)})"
    else:
        secret = "fixed secret" if st.secret else "secret drawn at start (cookies do not survive a restart)"
        what = f"sticky by cookie {st.cookie} ({secret})"
    extra = [
        "503 rather than move a client" if st.persist else "",
        f"draining servers keep clients {d(st.drain_grace)}" if st.drain_grace else "",
    ]
    return ", ".join(filter(None, [what, *extra]))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}").geturl()


def _control(config: Any) -> list[str]:
    """The admin API, DNS zones, the cluster and the floating address, when configured."""
    d = format_duration
    out: list[str] = []
    if config.admin is not None:
        a = config.admin
        auth = "token required for changes" if a.token or a.token_file else "no token (loopback only)"
        state = config.state_path or "not kept (no file)"
        out += ["", "admin", f"  http://{a.bind}/  API, /metrics and dashboard; {auth}; runtime state: {state}"]
    if config.dns:
        out += ["", "dns"]
        for z in config.dns:
            out.append(f"  {z.name}  zone {z.origin} on {z.bind} (UDP{' and TCP' if z.tcp else ''}), ttl {z.ttl}s")
            for r in z.records:
                target = f"pool {r.pool}, {r.policy}" if r.pool else f"{r.type} {', '.join(r.values)}"
                out.append(f"    {r.name}  → {target}")
    if config.cluster is not None:
        c = config.cluster
        where = f"node {c.node} on {_without_password(c.redis)}"
        out += ["", "cluster", f"  {where} (heartbeat {d(c.heartbeat)}, gone after {d(c.expire)})"]
    if config.keepalived is not None:
        k = config.keepalived
        out += [
            "",
            "keepalived",
            f"  {k.virtual_ipaddress} on {k.interface}, router id {k.virtual_router_id}, priority {k.priority}",
        ]
    return out


def _availability(p: Any) -> list[str]:
    """Health checks, ejection, retries, slow start and limits of pool ``p``, one line each."""
    d = format_duration
    h, o = p.health, p.outlier
    out = []
    if h is None:
        out.append("health: no active checks")
    else:
        what = f"GET {h.path} expecting {h.expect_status}" + (f" and {h.expect_body!r}" if h.expect_body else "")
        out.append(
            f"health: {what if h.type == 'http' else 'TCP connect'} every {d(h.interval)} "
            f"({d(h.failing_interval)} while failing), timeout {d(h.timeout)}, rise {h.rise}, fall {h.fall}"
        )
    if o.consecutive_failures or o.consecutive_5xx:
        after = [
            f"{o.consecutive_failures} failures" if o.consecutive_failures else "",
            f"{o.consecutive_5xx} failures or 5xx" if o.consecutive_5xx else "",
        ]
        out.append(
            f"ejection: after {' or '.join(filter(None, after))} in a row, for {d(o.base_ejection)} "
            f"growing to {d(o.max_ejection)}, at most {o.max_ejection_percent}% of the pool"
        )
    else:
        out.append("ejection: off")
    out.append(
        f"retries: {p.retries}"
        + (
            f" (budget {p.retry_budget:.0%} of requests" + (f", {d(p.try_timeout)} per try)" if p.try_timeout else ")")
            if p.retries
            else ""
        )
    )
    if p.slow_start:
        out.append(f"slow start: over {d(p.slow_start)} from {p.slow_start_floor:.0%}")
    if p.max_conns or any(s.max_conns for s in p.servers):
        out.append(f"queue: {p.max_queue} requests for {d(p.queue_timeout)} once servers reach max_conns")
    if p.panic_threshold:
        out.append(f"panic: every server when under {p.panic_threshold}% are usable")
    return out
