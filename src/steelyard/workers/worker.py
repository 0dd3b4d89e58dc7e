"""A worker process: ``python -m steelyard.workers.worker FD`` (started by the control process).

FD is its end of the socket pair to the control process. The first message (``hello``)
carries the configuration text, the descriptors it inherited (the shared-counter block and
each stream listener's socket) and the pools' current views. The worker then:
- builds the pools (no health checks: each ``pools`` message publishes a pool's usable servers,
  slow-start ramps and draining servers as the control process's health keeper decided) and
  the listeners on the inherited sockets (UDP: its own socket on the port, ``SO_REUSEPORT``);
- counts each server's in-flight requests in its row of the shared block, and picks with
  ``least_conn`` / ``least_time`` on every worker's count (``core.balancing.cluster_load``);
- reports passive-health failures and answers counter requests;
- on ``stop``, or when the control process is gone, finishes in-flight work within
  ``shutdown_grace`` and exits. SIGINT is ignored (a terminal's Ctrl-C reaches the control
  process, which stops the workers in order); SIGTERM stops it gracefully too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from typing import Any

from ..config import parse_config
from ..control.runtime import Runtime
from ..core.balancing import resolve_algorithm
from ..core.balancing.cluster_load import CLUSTER_VARIANTS
from ..core.model import Server
from .channel import Channel, add_rows, counter_row, listener_row
from .slots import SharedLoad, SlotTable

log = logging.getLogger("steelyard.workers")


class WorkerRuntime(Runtime):
    """The data plane of one worker: listeners and pools, fed by the control process."""

    def __init__(self, config: Any, hello: dict, channel: Channel) -> None:
        super().__init__(config)
        self.hello, self.channel = hello, channel
        self.row = hello["row"]
        self.slots = SlotTable(hello["slots_fd"])
        self.servers: dict[tuple, Server] = {}  # (name, host, port, weight, max_conns, column) -> server
        # (name, host, port, column) -> its load: a weight change makes another Server, same count
        self.loads: dict[tuple, SharedLoad] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        secret = bytes.fromhex(self.hello["secret"])
        for pc in self.config.pools:
            pool = self.pools[pc.name] = self.make_pool(pc, loop, secret=secret)
            pool.variants = CLUSTER_VARIANTS  # (least_conn / least_time count every worker's requests)
            pool.eject_after, pool.eject_5xx = pc.outlier.consecutive_failures, pc.outlier.consecutive_5xx
            pool.on_failing = self._failing
        self.apply(self.hello["pools"])
        for lc in self.config.listeners:
            listener = self.make_listener(lc, loop)
            given = self.hello["listeners"][lc.name]
            if lc.mode == "udp":
                listener.port, listener.reuse_port = given["port"], True
            else:
                listener.sock = socket.socket(fileno=given["fd"])
            await listener.start()
            self.listeners[lc.name] = listener
        self._sweeper = loop.create_task(self._sweep_upstreams())

    def apply(self, views: dict[str, dict]) -> None:
        """Publish the control process's view of each pool named in ``views``."""
        now = asyncio.get_running_loop().time()
        for name, view in views.items():
            pool = self.pools.get(name)
            if pool is None:
                continue
            pool.algorithm = resolve_algorithm(view["algorithm"])  # (an admin API change reaches here)
            servers = [self._server(ref) for ref in view["servers"]]
            by_name = {s.name: s for s in servers}
            ramping = {by_name[n]: now - age for n, age in view["ramping"] if n in by_name}
            draining = {ref[0]: (self._server(ref), now - age) for ref, age in view["draining"]}
            pool.publish(servers, ramping, view["window"], view["floor"], draining)
        self._forget_unused()

    def _server(self, ref: list) -> Server:
        key = tuple(ref)
        server = self.servers.get(key)
        if server is None:
            name, host, port, weight, max_conns, col = ref
            load = self.loads.get((name, host, port, col))
            if load is None:
                load = self.loads[(name, host, port, col)] = SharedLoad(self.slots.cells, self.row, col)
            server = self.servers[key] = Server(name, host, port, weight, max_conns, load=load)
        return server

    def _forget_unused(self) -> None:
        """Drop servers no pool publishes and none of this worker's requests uses (their column
        may go to another server later)."""
        if len(self.servers) < 64:
            return
        used = {s for pool in self.pools.values() for s in (*pool.snapshot.servers, *pool.upstreams)}
        for key, server in list(self.servers.items()):
            if server not in used and not server.load.active:
                del self.servers[key]
        kept = {id(s.load) for s in self.servers.values()}
        self.loads = {k: load for k, load in self.loads.items() if id(load) in kept}

    def _failing(self, server: Server, why: str) -> None:
        server.load.fail_streak = server.load.err_streak = 0  # (counting starts over, as the keeper does)
        pool = next((name for name, p in self.pools.items() if server in p.known), None)
        if pool is not None:
            self.channel.send({"op": "failing", "pool": pool, "server": server.name, "why": why})

    def stats(self) -> dict:
        """This worker's counters: pool -> servers (by name) and the pool's own counters."""
        out = {}
        for name, pool in self.pools.items():
            servers: dict[str, list] = {}
            seen: set[int] = set()
            for s in pool.known:  # (a weight change leaves two servers of one name: one row)
                if id(s.load) in seen:
                    continue  # (and most often one load record: counted once)
                seen.add(id(s.load))
                row = counter_row(s.load)
                have = servers.get(s.name)
                servers[s.name] = row if have is None else add_rows(have, row)
            latest: dict[str, Any] = {}  # server name -> its most recently measured load record
            for s in pool.known:
                if s.load.ewma and (s.name not in latest or s.load.ewma_stamp > latest[s.name].ewma_stamp):
                    latest[s.name] = s.load
            out[name] = {
                "servers": servers,
                "retried": pool.retried_total,
                "answered": {str(k): v for k, v in pool.answered.items()},
                "queued": len(pool.waiting),
                "ewma": {n: load.ewma for n, load in latest.items()},
            }
        return out

    def frontends(self) -> dict:
        """This worker's listener counters and open connections (``channel.listener_row``)."""
        return {
            "listeners": {name: listener_row(lst) for name, lst in self.listeners.items()},
            "open": {name: len(getattr(lst, "connections", ())) for name, lst in self.listeners.items()},
        }

    def set_remote_ewma(self, by_column: dict[str, float]) -> None:
        """Other balancers' mean response time per server column ([cluster]: least_time)."""
        for key, server in self.servers.items():
            server.load.remote_ewma = by_column.get(str(key[5]), 0.0)


async def main(fd: int) -> int:
    loop = asyncio.get_running_loop()
    channel = await Channel.open(socket.socket(fileno=fd))
    hello = await channel.receive()
    if hello is None or hello.get("op") != "hello":
        return 2
    root = logging.getLogger()
    root.setLevel(hello.get("log_level", logging.WARNING))
    root.handlers[0].setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [worker {hello['index']}]: %(message)s")
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        loop.add_signal_handler(sig, lambda: None)
    try:
        runtime = WorkerRuntime(parse_config(hello["config"], hello["source"] or "<string>"), hello, channel)
        await runtime.start()
    except Exception as exc:  # (a certificate gone since the control process read the file, ...)
        log.error("cannot serve: %s", exc)
        channel.send({"op": "failed", "why": str(exc)})
        await channel.drain()
        return 1
    from ..proxy import malloc

    malloc.freeze_started()  # (a full garbage collection would visit every pool's servers)
    channel.send({"op": "ready"})

    async def listen() -> None:
        while (msg := await channel.receive()) is not None:
            op = msg.get("op")
            if op == "pools":
                runtime.apply(msg["views"])
            elif op == "remote":
                runtime.set_remote_ewma(msg["ewma"])
            elif op == "stats":
                channel.send({"op": "stats", "id": msg["id"], "stats": runtime.stats(), **runtime.frontends()})
            elif op == "stop":
                break
        stop.set()  # (asked to, or the control process is gone)

    listening = loop.create_task(listen())
    await stop.wait()
    listening.cancel()
    await runtime.stop()
    channel.send({"op": "bye", "stats": runtime.stats(), **runtime.frontends()})
    await channel.drain()
    channel.close()
    return 0


def run() -> None:
    from ..proxy import malloc

    malloc.tune()  # (steady costs for large buffers: see proxy/malloc.py)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fd = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        sys.exit(asyncio.run(main(fd)))
    sys.exit(uvloop.run(main(fd)))


if __name__ == "__main__":
    run()
