"""Zero-downtime reload: a new configuration replaces the running one without refusing a
connection or failing a request.

Order (``reload``):
1. The new configuration was validated before this is called (an invalid one never gets here;
   the old one keeps running). New listeners' addresses are bound first: one that is taken
   refuses the reload before anything changed.
2. New pools and health keepers are built (a few at a time between turns of the event loop, with
   garbage collection paused, then swapped in at once); a server whose name, address, weight and
   limit are unchanged keeps its ``Server`` object, so its in-flight count and learned latency
   carry over.
3. Listeners whose name, mode, bind and TLS-or-not are unchanged stay bound (no socket closes):
   their routes, limits and settings are switched to the new pools in one synchronous step, and
   a TLS listener reads its certificates again (renewed ones serve new handshakes). New listeners start;
   listeners no longer configured, or bound elsewhere now, stop gracefully in the background
   (stop accepting, finish what is in flight within ``shutdown_grace``).
4. Requests already in flight finish on the pools they started with; keep-alive connections
   send their next request to the new pools. Requests waiting in an old pool's queue move to
   the new pool of the same name, and the old pool's leases still in flight wake that queue
   as they end (``PoolRuntime.succeed``). Old pools close their idle server connections at once and
   their busy ones as their requests end.
5. Runtime changes (the state file) are applied again over the new configuration; a file edit
   that one of them overrides is logged (``changes.overridden``).
6. Counters only grow: servers (by name) keep theirs, pools and listeners too.
The admin listener itself is not rebound by a reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from .changes import overridden

log = logging.getLogger("steelyard")
POOLS_PER_TURN = 25  # pools built, or old ones closed, between two turns of the event loop


async def reload(rt: Any, new: Any) -> None:
    loop = asyncio.get_running_loop()
    for why in overridden(rt.config, new, rt.changes.record):
        log.warning("reload: %s", why)
    old_pools, old_keepers, old_listeners = rt.pools, rt.health, rt.listeners
    plan = {lc.name: _kept(old_listeners.get(lc.name), lc) for lc in new.listeners}
    bound = await _bind_new([lc for lc in new.listeners if plan[lc.name] is None], one_process=rt.hub is None)
    # (nothing below can fail for an address: the old configuration is untouched until here)
    keep = {(pool, s.name): s for pool, k in old_keepers.items() for s in (st.server for st in k.health.states)}
    collecting = gc.isenabled()
    gc.disable()  # (building thousands of servers would run full collections over everything alive)
    try:
        pools, health = await rt.rebuild_pools(new, loop, keep)
    finally:
        if collecting:
            gc.enable()
    rt.config = new
    rt.pools, rt.health = pools, health
    kept, started, retired = {}, [], []
    for lc in new.listeners:
        old = plan[lc.name]
        if old is not None:
            _retarget(rt, old, lc)
            kept[lc.name] = old
            continue
        holder = bound[lc.name]
        if rt.hub is not None:
            listener = holder  # (the workers serve: the bound socket is all this process keeps)
        else:
            listener = rt.make_listener(lc, loop)
            listener.requested_port, listener.sock = lc.port, holder.sock
            _carry_frontend(old_listeners.get(lc.name), listener)
            await listener.start()
        started.append(lc.name)
        kept[lc.name] = listener
    retired = [lst for name, lst in old_listeners.items() if kept.get(name) is not lst]
    rt.listeners = kept
    for i, (name, pool) in enumerate(old_pools.items(), 1):
        if name in rt.pools:
            rt.pools[name].succeed(pool)
            _carry_counters(pool, old_keepers[name], rt.pools[name], rt.health[name])
        old_keepers[name].stop()
        pool.close()
        if i % POOLS_PER_TURN == 0:
            await asyncio.sleep(0)  # (the listeners serve the new pools already)
    await _reload_dns(rt, new, loop)
    rt.changes.record = {"version": 1, "pools": {}}
    cluster = getattr(rt, "cluster", None)
    rt.changes.quiet = cluster is not None  # (clustered: Redis is the truth, the resync below applies it)
    try:
        rt.changes.apply_saved()
    finally:
        rt.changes.quiet = False
    if cluster is not None:
        cluster.adopt_pools()
    for lst in retired:
        loop.create_task(_retire(lst, new.shutdown_grace))
    log.warning(
        "reloaded %s: %d listener(s) kept, %d started, %d stopping; %d pool(s)",
        new.source,
        len(kept) - len(started),
        len(started),
        len(retired),
        len(rt.pools),
    )


def _kept(old: Any, lc: Any) -> Any:
    """``old`` when listener config ``lc`` can keep it (same mode, address, TLS or not), else None."""
    if (
        old is not None
        and old.mode == lc.mode
        and (old.host, old.requested_port) == (lc.host, lc.port)
        and (getattr(old, "tls", None) is None) == (getattr(lc, "tls", None) is None)
    ):
        return old
    return None


async def _bind_new(configs: list, one_process: bool) -> dict[str, Any]:
    """Bind the new listeners' sockets first: an address in use refuses the whole reload
    before anything changed (OSError)."""
    from ..workers.holder import SocketHolder

    bound: dict[str, Any] = {}
    try:
        for lc in configs:
            holder = SocketHolder(lc, keep_udp=one_process)
            await holder.start()
            bound[lc.name] = holder
    except BaseException:
        for holder in bound.values():
            holder.stop_accepting()
        raise
    return bound


def _retarget(rt: Any, listener: Any, lc: Any) -> None:
    if getattr(listener, "holder", False):
        return  # (with workers: the new generation of workers serves the new settings)
    if lc.mode == "http":
        from ..proxy.http.router import build_router

        tls = listener.tls  # (the bound socket keeps its SSL context: certificates are reloaded into it)
        listener.harden(lc.model_copy(update={"tls": None}))  # limits
        if tls is not None:
            tls.tls = lc.tls
            tls.reload()
        listener.router = build_router(lc, rt.pools)
        listener.keepalive_timeout, listener.request_timeout = lc.keepalive_timeout, lc.request_timeout
        listener.refresh()
        if lc.access_log != (listener.access_log.path if listener.access_log else None):
            from ..proxy.http.access import AccessLog

            if listener.access_log is not None:
                listener.loop.create_task(listener.access_log.close())
            listener.access_log = AccessLog(lc.access_log, listener.loop) if lc.access_log else None
        from ..proxy.http.chains import from_config

        listener.use_filters(from_config(lc, listener.router, rt.pools, listener.loop))
        for conn in listener.connections:  # (each connection caches whether it keeps header lists)
            conn.keep_headers = listener.keep_headers
    elif lc.mode == "tcp":
        from .runtime import sni_routes

        listener.harden(lc)
        listener.pool = rt.pools[lc.pool]
        listener.sni_routes = sni_routes(lc, rt.pools)
        listener.connect_timeout = rt.config.pool(lc.pool).connect_timeout
        listener.idle_timeout, listener.send_proxy = lc.idle_timeout, lc.send_proxy
    else:
        listener.pool = rt.pools[lc.pool]
        listener.idle_timeout, listener.per_datagram, listener.max_flows = (
            lc.idle_timeout,
            lc.per_datagram,
            lc.max_flows,
        )


def _carry_frontend(old: Any, new: Any) -> None:
    """A listener bound anew (another address) continues the counters of the one of its name."""
    if old is None or getattr(old, "codes", None) is None or getattr(new, "codes", None) is None:
        return
    new.accepted, new.requests, new.bytes_in, new.bytes_out = old.accepted, old.requests, old.bytes_in, old.bytes_out
    new.codes = list(old.codes)


def _carry_counters(old: Any, old_keeper: Any, new: Any, keeper: Any) -> None:
    """The pool's counters (and each server's ejection count) continue in the new pool: a
    reload never sets a counter back. (The old pool's requests still in flight count into the
    same ``answered`` record.)"""
    new.retried_total += old.retried_total
    old.answered.update(new.answered)
    new.answered = old.answered
    ejected = {st.server.name: st.ejected_total for st in old_keeper.health.states}
    for st in keeper.health.states:
        st.ejected_total += ejected.get(st.server.name, 0)


async def _retire(listener: Any, grace: float) -> None:
    listener.stop_accepting()
    listener.shutdown_connections()
    if not await listener.wait_idle(grace):
        listener.abort_connections()
    await listener.close()


async def _reload_dns(rt: Any, new: Any, loop: asyncio.AbstractEventLoop) -> None:
    """DNS listeners answer from the new pools; one whose address changed is rebound."""
    if not new.dns and not rt.dns:
        return  # (nor import dnspython, ~70 ms on the loop, for a configuration without DNS)
    from ..dns.server import DnsListener
    from ..dns.zone import Zone

    old, rt.dns = rt.dns, {}
    for dc in new.dns:
        zone = Zone(dc, rt.pools, rt.health, rt.rng)
        was = old.pop(dc.name, None)
        if was is not None and (was.cfg.host, was.cfg.port, was.cfg.tcp) == (dc.host, dc.port, dc.tcp):
            was.cfg, was.service.zone = dc, zone
            rt.dns[dc.name] = was
            continue
        if was is not None:
            await was.close()
        rt.dns[dc.name] = listener = DnsListener(dc, zone, dc.host, dc.port, loop)
        await listener.start()
    for gone in old.values():
        await gone.close()
