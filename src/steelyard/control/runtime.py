"""The running balancer: builds pools and listeners from a validated config, starts and stops them.

The control plane owns every ``PoolRuntime`` and publishes snapshots into it; the
data plane (listeners and their connections) only reads ``pool.snapshot``.
Shutdown order: stop accepting, let in-flight requests (and relayed TCP connections)
finish within the grace period (idle keep-alive connections after a moment of grace for a
request on its way; UDP flows end at once), abort what is left, close upstream connections.
``control/serve.py`` runs a ``Runtime`` as the ``steelyard serve`` process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, parse_config, read_file
from ..core.model import Server
from ..proxy.http.chains import from_config as filters_from_config
from ..proxy.http.connpool import ConnPool
from ..proxy.http.listener import HttpListener
from ..proxy.http.router import build_router
from ..proxy.l4listener import TcpListener
from ..proxy.pool import FULL, PoolRuntime
from ..proxy.sticky import Sticky
from ..proxy.tls import client_context
from ..proxy.udp import UdpListener
from .changes import RuntimeChanges
from .dashboard import JOURNAL
from .health import PoolHealthKeeper
from .reload import POOLS_PER_TURN, reload

if TYPE_CHECKING:
    from ..dns.server import DnsListener
    from .admin import AdminServer

log = logging.getLogger("steelyard")


def servers_from_config(pool_cfg: Any) -> list[Server]:
    default = pool_cfg.max_conns or 0
    return [
        Server(name=s.name, host=s.host, port=s.port, weight=s.weight, max_conns=s.max_conns or default)
        for s in pool_cfg.servers
    ]


class Runtime:
    def __init__(self, config: Any, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.pools: dict[str, PoolRuntime] = {}
        self.listeners: dict[str, Any] = {}  # HttpListener | TcpListener | UdpListener (one stop interface)
        self.health: dict[str, PoolHealthKeeper] = {}
        self.admin: AdminServer | None = None
        self.dns: dict[str, DnsListener] = {}
        self._sweeper: asyncio.Task | None = None
        self._reloading = asyncio.Lock()
        self.changes: RuntimeChanges | None = None
        self.cluster: Any = None  # cluster.node.ClusterNode with [cluster]
        self.hub: Any = None  # workers.master.WorkerHub with workers > 1 (this process then serves no traffic)
        self.workers_override: int | None = None  # `serve --workers N`: wins over the file's, on reloads too
        self.reloads = {"ok": 0, "failed": 0}  # reloads asked for (SIGHUP, the API) by outcome (metrics)
        self.last_reload: tuple[bool, float] | None = None  # (it succeeded, Unix time) of the last one
        self.journal: deque = deque(maxlen=JOURNAL)  # recent events (Unix time, pool or None, text): the dashboard

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.journal.append((time.time(), None, f"started with {self.config.source}"))
        self.build_pools(loop)
        try:
            for lc in self.config.listeners:
                listener = self.make_listener(lc, loop)
                listener.requested_port = lc.port  # (a reload keeps a listener whose bind is unchanged)
                await listener.start()
                self.listeners[lc.name] = listener
                log.info("listener %s on %s:%d (%s) -> pool %s", lc.name, lc.host, listener.port, lc.mode, lc.pool)
        except BaseException:
            await self.stop(grace=0)
            raise
        self._sweeper = loop.create_task(self._sweep_upstreams())
        try:
            if self.config.dns:  # (imported on use: worker processes and plain balancers skip dnspython)
                from ..dns.server import DnsListener
                from ..dns.zone import Zone
            for dc in self.config.dns:
                self.dns[dc.name] = dns_listener = DnsListener(
                    dc, Zone(dc, self.pools, self.health, self.rng), dc.host, dc.port, loop
                )
                await dns_listener.start()
        except BaseException:
            await self.stop(grace=0)
            raise
        self.changes = RuntimeChanges(self, self.config.state_path)
        self.changes.apply_saved()
        if getattr(self.config, "cluster", None) is not None:  # Redis is the truth: it resyncs over the file
            from ..extras import require

            require("redis", "[cluster]")
            from ..cluster.node import ClusterNode

            self.cluster = ClusterNode(self, self.config.cluster)
            await self.cluster.start()
        admin = self.config.admin
        if admin is not None:
            from .admin import AdminApp, AdminServer  # (Starlette and uvicorn only where there is an admin API)

            try:
                token = admin.read_token()
                self.admin = AdminServer(AdminApp(self, self.changes, token, admin.host), admin.host, admin.port)
                await self.admin.start(loop)
            except BaseException:
                await self.stop(grace=0)
                raise

    def build_pools(self, loop: asyncio.AbstractEventLoop, reuse: dict | None = None) -> None:
        """A ``PoolRuntime`` and its health keeper per configured pool; ``reuse`` maps (pool, server
        name) to a running ``Server`` kept when its settings are unchanged (a reload)."""
        for pc in self.config.pools:
            self._build_pool(pc, loop, reuse, self.pools, self.health)

    async def rebuild_pools(
        self, config: Any, loop: asyncio.AbstractEventLoop, reuse: dict
    ) -> tuple[dict[str, PoolRuntime], dict[str, PoolHealthKeeper]]:
        """``build_pools`` for a reload, of ``config``'s pools: into new dicts, which the caller
        swaps in, giving the loop a turn every ``POOLS_PER_TURN`` pools (1,000 pools take a few
        hundred ms to build: traffic must not wait for all of them)."""
        pools: dict[str, PoolRuntime] = {}
        health: dict[str, PoolHealthKeeper] = {}
        for i, pc in enumerate(config.pools, 1):
            self._build_pool(pc, loop, reuse, pools, health, self.pools.get(pc.name))
            if i % POOLS_PER_TURN == 0:
                await asyncio.sleep(0)
        return pools, health

    def _build_pool(
        self,
        pc: Any,
        loop: asyncio.AbstractEventLoop,
        reuse: dict | None,
        pools: dict,
        health: dict,
        old: PoolRuntime | None = None,
    ) -> None:
        servers = [_reused(s, reuse, pc.name) for s in servers_from_config(pc)]
        pool = pools[pc.name] = self.make_pool(pc, loop)
        if old is not None:  # (a reload: a hashing pool starts from the old pool's table)
            pool.tables.adopt(old.tables)
        keeper = health[pc.name] = PoolHealthKeeper.from_config(pool, pc, servers, loop=loop, rng=self.rng)
        keeper.journal = self.journal
        if self.hub is not None:
            keeper.on_publish = self.hub.on_publish
        keeper.start()

    def make_pool(self, pc: Any, loop: asyncio.AbstractEventLoop, secret: bytes | None = None) -> PoolRuntime:
        """The data plane's pool for pool config ``pc``, with no server published yet."""
        pool = PoolRuntime(
            pc.name,
            pc.algorithm,
            pc.balancer_options(),
            (),  # the health keeper publishes the usable ones
            make_upstream=_upstream_factory(loop, pc),
            rng=self.rng,
            clock=loop.time,
            timeout=pc.timeout,
            retries=pc.retries,
            retry_budget=pc.retry_budget,
            retry_header=pc.retry_header,
            max_queue=pc.max_queue,
            queue_timeout=pc.queue_timeout,
        )
        if getattr(pc, "sticky", None) is not None:
            pool.sticky = Sticky(pc.sticky, clock=loop.time, full=FULL, secret=secret)
        return pool

    async def reload(self, config: Any, text: str | None = None, workers: int | None = None) -> None:
        """Switch to ``config`` (already validated; read from ``text``) without dropping
        anything (``reload``; with workers, a new generation of ``workers`` takes over)."""
        async with self._reloading:
            if self.hub is None:
                await reload(self, config)
                return
            self.hub.rolling = True  # (no shared-counter column is reused while old workers may count on it)
            try:
                await reload(self, config)
                if text is not None:
                    await self.hub.roll(text, workers or config.workers)
            finally:
                self.hub.rolling = False

    async def refresh_stats(self) -> None:
        """With workers: their counters, totalled into this process's load records."""
        if self.hub is not None:
            await self.hub.refresh()

    def queue_depth(self, pool: str) -> int:
        if self.hub is not None:
            return self.hub.queued.get(pool, 0)
        return len(self.pools[pool].waiting)

    async def reload_from_file(self, discard: list[str] | None = None, discard_all: bool = False) -> tuple[bool, str]:
        """Read the configuration file again and switch to it; an invalid one is refused (the
        running configuration stays) and the reason returned. ``discard`` (pool names) or
        ``discard_all`` first drop those pools' runtime changes (changes.discard). Counted
        (``reloads``) either way."""
        ok, why = await self._reload_from_file(discard, discard_all)
        self.reloads["ok" if ok else "failed"] += 1
        self.last_reload = (ok, time.time())
        self.journal.append((time.time(), None, "reloaded" if ok else f"reload refused: {why.splitlines()[0]}"))
        return ok, why

    async def _reload_from_file(self, discard: list[str] | None, discard_all: bool) -> tuple[bool, str]:
        path = self.config.source
        try:
            text = read_file(path)
            new = parse_config(text, str(path))
        except ConfigError as err:
            log.error("reload refused, still serving the previous configuration:\n%s", err)
            print(f"steelyard: reload refused: {err}", flush=True)
            return False, str(err)
        if discard or discard_all:
            self.changes.discard(None if discard_all else discard)
        workers = self.workers_override or new.workers
        if self.hub is None and workers > 1:
            log.warning("workers = %d takes effect at the next start: this process goes on serving alone", workers)
        elif self.hub is not None and workers != self.hub.count:
            log.warning("workers: %d -> %d", self.hub.count, workers)
        try:
            await self.reload(new, text, workers)
        except (OSError, RuntimeError) as exc:  # a new listener's address is taken; workers did not start
            log.error("reload failed: %s", exc)
            print(f"steelyard: reload failed: {exc}", flush=True)
            return False, str(exc)
        print(f"steelyard: reloaded {path}", flush=True)
        return True, ""

    def make_listener(self, lc: Any, loop: asyncio.AbstractEventLoop) -> Any:
        if self.hub is not None:  # the workers serve: this process holds the socket they share
            from ..workers.holder import SocketHolder

            return SocketHolder(lc)
        if lc.mode == "tcp":
            tcp = TcpListener(
                lc.name,
                lc.host,
                lc.port,
                self.pools[lc.pool],
                loop=loop,
                connect_timeout=self.config.pool(lc.pool).connect_timeout,
                idle_timeout=lc.idle_timeout,
                send_proxy=lc.send_proxy,
                splice=lc.splice,
            ).harden(lc)
            tcp.sni_routes = sni_routes(lc, self.pools)
            return tcp
        if lc.mode == "udp":
            return UdpListener(
                lc.name,
                lc.host,
                lc.port,
                self.pools[lc.pool],
                loop=loop,
                idle_timeout=lc.idle_timeout,
                per_datagram=lc.per_datagram,
                max_flows=lc.max_flows,
            )
        http = HttpListener(
            lc.name,
            lc.host,
            lc.port,
            build_router(lc, self.pools),
            loop=loop,
            keepalive_timeout=lc.keepalive_timeout,
            request_timeout=lc.request_timeout,
            access_log=lc.access_log,
        ).harden(lc)
        http.use_filters(filters_from_config(lc, http.router, self.pools, loop))
        return http

    async def _sweep_upstreams(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            for pool in self.pools.values():
                pool.sweep(now)

    def status_text(self) -> str:
        """Every pool's servers with their standing (``kill -USR1`` prints it)."""
        lines = []
        for name, keeper in self.health.items():
            lines.append(f"pool {name}")
            for r in keeper.status():
                lines.append(
                    f"  {r['server']:<20} {r['status']:<8}{' backup' if r['backup'] else ''}  "
                    f"active {r['active']}  requests {r['requests']}  failures {r['failures']}  "
                    f"since {r['since']}: {r['reason']}"
                )
        if self.hub is not None:
            lines.append(f"workers {self.hub.count} ({self.hub.restarts} restarts)")
            lines += [
                f"  worker {w['index']}  pid {w['pid']}  generation {w['generation']}  active {w['active']}"
                f"{'  stopping' if w['stopping'] else ''}"
                for w in self.hub.status()
            ]
        return "\n".join(lines)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: in-flight requests get ``grace`` seconds (config's shutdown_grace)."""
        if grace is None:
            grace = self.config.shutdown_grace
        if self.hub is not None:
            self.hub.closing = True  # (workers leaving from now on are not replaced)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.admin is not None:
            await self.admin.stop()
        if self.hub is not None:  # the workers finish their in-flight work within the grace, then exit
            for holder in self.listeners.values():
                holder.stop_accepting()  # (new connections are refused, not queued for no one)
            await self.hub.stop(grace)
        for dns_listener in self.dns.values():
            await dns_listener.close()
        for keeper in self.health.values():
            keeper.stop()
        for listener in self.listeners.values():
            listener.stop_accepting()
        for listener in self.listeners.values():
            listener.shutdown_connections()
        results = await asyncio.gather(*(lst.wait_idle(grace) for lst in self.listeners.values()))
        if not all(results):
            log.warning("grace period of %.1fs over: aborting the connections still open", grace)
        for listener in self.listeners.values():
            listener.abort_connections()
            await listener.close()
        for pool in self.pools.values():
            pool.close()


def sni_routes(lc: Any, pools: dict[str, PoolRuntime]) -> list[tuple[str, PoolRuntime]]:
    return [(r.name.lower().rstrip("."), pools[r.pool]) for r in lc.sni]


def _reused(server: Server, reuse: dict | None, pool: str) -> Server:
    """The running server of that name when its settings are unchanged; with another weight or
    limit, a new object sharing its load record; at another address, a fresh load record that
    continues its counters (a reload never sets a counter back)."""
    old = reuse.get((pool, server.name)) if reuse else None
    if old is None:
        return server
    if (old.host, old.port) != (server.host, server.port):
        server.load.take_counters(old.load)
        return server
    if (old.weight, old.max_conns) == (server.weight, server.max_conns):
        return old
    return Server(server.name, server.host, server.port, server.weight, server.max_conns, old.load)


def _upstream_factory(loop: asyncio.AbstractEventLoop, pc: Any):
    ssl_ctx = client_context(pc.tls_verify, pc.tls_ca) if pc.tls else None

    def make(server: Server) -> ConnPool:
        return ConnPool(
            server,
            loop,
            max_idle=pc.max_idle,
            idle_timeout=pc.idle_timeout,
            connect_timeout=pc.connect_timeout,
            timeout=pc.timeout,
            try_timeout=pc.try_timeout,
            ssl=ssl_ctx,
            server_name=pc.tls_server_name,
        )

    return make
