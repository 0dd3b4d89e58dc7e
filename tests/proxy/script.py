"""Scripted exchanges: the L7 data plane driven without sockets, for tests meant to outlive its classes.

A scripted test speaks only this module's verbs: bytes a client sends (``Client.send``), its
half-close (``eof``) or its leaving (``gone``); bytes a server sends (``Conn.reply``), its close
or reset; a server that refuses connects or lets them time out (``Script.connect_fails``); time
passing (``Script.tick``); a graceful stop (``Script.stop``). It observes only what would cross a
socket: the exact bytes each client and each server connection received, how the proxy ended
each connection (``ending``: open, closed cleanly, aborted, reset), which server a connection
went to, and the servers' load records (``Backend.load``). Which classes make up the proxy and
how they are wired is known here only: when the data plane is rebuilt, this module changes and
the scripts do not.

How it runs (deterministic: no sockets, no sleeps, no real event loop; the fakes are in
``script_io.py``):
- The proxy runs on a ``FakeLoop`` whose clock moves only in ``tick``. Every verb settles
  before it returns: callbacks due now run (a closed transport's ``connection_lost``, a
  connect's completion), and connects are made or refused. An exception raised by the proxy
  fails the test.
- The listener's timeout sweep and the pools' sweep (the runtime's 0.25 s task) are periodic
  timers on that loop, at the intervals the real tasks sleep, and stamp ``now`` as they do.
- Each connection's transport is a ``Pipe``: what the proxy writes is what the peer received.
- Connects: each server's connection pool is a ``ConnPool`` whose ``connect`` is replaced (its
  caller, ``connect_for``, is the real one). A connect is a ``Dial`` the script settles by the
  server's mode: made (the default), refused, or left pending until the pool's
  ``connect_timeout`` passes (``"timeout"``), as ``asyncio.wait_for`` would end it.
"""

from __future__ import annotations

import random
from typing import Any

from steelyard.core.balancing import BalancerOptions
from steelyard.core.model import Server, ServerLoad
from steelyard.proxy.http.connpool import ConnPool
from steelyard.proxy.http.listener import HttpListener
from steelyard.proxy.http.router import Router
from steelyard.proxy.http.upstream import UpstreamConnection
from steelyard.proxy.pool import PoolRuntime

from .script_io import CLOSED, EOF, OPEN, RESET, Dial, FakeLoop, Pipe

POOL_SWEEP = 0.25  # the runtime's upstream sweep interval (``Runtime._sweep_upstreams``)


class Endpoint:
    """What clients and server connections share: their pipe's observations."""

    pipe: Pipe
    script: Script

    @property
    def received(self) -> bytes:
        """Every byte the proxy sent to this peer."""
        return bytes(self.pipe.data)

    @property
    def ending(self) -> str:
        """``"open"``, or how the proxy ended the connection: ``"closed"`` (cleanly, after
        everything written), ``"aborted"`` (at once), ``"reset"`` (an RST the peer must see);
        ``"lost"`` when the peer reset it or went away first."""
        return self.pipe.ending

    @property
    def open(self) -> bool:
        return self.pipe.ending == OPEN

    @property
    def closed(self) -> bool:
        return self.pipe.ending == CLOSED

    @property
    def half_closed(self) -> bool:
        """The proxy passed on an EOF to this peer (a tunnel's half-close)."""
        return self.pipe.half_closed

    @property
    def reading(self) -> bool:
        """The proxy reads what this peer sends (False: it paused reading)."""
        return self.pipe.reading


class Client(Endpoint):
    """One client connection to the listener."""

    def __init__(self, script: Script, peer: str) -> None:
        self.script = script
        self.protocol = script.listener.protocol()
        self.pipe = Pipe(script.loop, self.protocol, peer)
        self.protocol.connection_made(self.pipe)
        script.run()

    @property
    def reset(self) -> bool:
        """The proxy reset the connection (a cut the client must see)."""
        return self.pipe.ending == RESET

    def send(self, data: bytes) -> Client:
        self.pipe.deliver(data)
        self.script.run()
        return self

    def eof(self) -> None:
        """The client half-closes (it shuts down its sending side)."""
        self.pipe.deliver(EOF)
        self.script.run()

    def gone(self) -> None:
        """The client's connection is lost (it reset it, or went away)."""
        self.pipe.drop(ConnectionResetError("the client went away"))
        self.script.run()


class Conn(Endpoint):
    """One connection the proxy made to a server."""

    def __init__(self, script: Script, backend: Backend, protocol: Any) -> None:
        self.script, self.server = script, backend
        self.pipe = Pipe(script.loop, protocol, "proxy")
        self.pipe.on_write = self._written

    def _written(self) -> None:
        self.script.last_connection = self

    def __repr__(self) -> str:
        return f"Conn({self.server.name} #{self.server.connections.index(self)})"

    def reply(self, data: bytes) -> Conn:
        self.pipe.deliver(data)
        self.script.run()
        return self

    def close(self) -> None:
        """The server closes its side (FIN)."""
        self.pipe.deliver(EOF)
        self.script.run()

    def reset(self) -> None:
        """The server resets the connection."""
        self.pipe.drop(ConnectionResetError("reset by the server"))
        self.script.run()


class Backend:
    """One fake server of the pool: its connections, how it takes connects, its load record."""

    def __init__(self, index: int, server: Server) -> None:
        self.index, self.server = index, server
        self.connections: list[Conn] = []
        self.mode = "accept"  # or "refused", "timeout"

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def load(self) -> ServerLoad:
        """Its counters: ``active`` (in flight), ``requests`` (answered), ``failures`` (the server's)."""
        return self.server.load

    def __repr__(self) -> str:
        return f"Backend({self.index})"


class ScriptedConnPool(ConnPool):
    """The real connection pool, with connects the script settles."""

    __slots__ = ("script", "backend")

    def connect(self) -> Dial:
        dial = Dial(self.script.loop, self)
        self.script.dials.append(dial)
        self.loop.call_later(self.connect_timeout, dial.time_out)  # (``asyncio.wait_for``)
        return dial


class Script:
    """A listener in front of a pool of ``servers`` fake servers (``s0``, ``s1``...), with a
    fake clock. Options: the pool's ``algorithm``, ``retries``, ``retry_budget``, ``timeout``,
    ``try_timeout``, ``connect_timeout``, ``max_conns`` (per server), ``max_queue``,
    ``queue_timeout``, ``max_idle`` and ``idle_timeout`` (server keep-alive); the listener's
    ``keepalive_timeout`` and ``request_timeout``."""

    def __init__(
        self,
        *,
        servers: int = 1,
        algorithm: str = "round_robin",
        retries: int = 0,
        retry_budget: float = 0.2,
        timeout: float = 30.0,
        try_timeout: float | None = None,
        connect_timeout: float = 1.0,
        max_conns: int = 0,
        max_queue: int = 0,
        queue_timeout: float = 5.0,
        max_idle: int = 8,
        idle_timeout: float = 60.0,
        keepalive_timeout: float = 60.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.loop = FakeLoop()
        self.backends = [
            Backend(i, Server(f"s{i}", f"10.0.0.{i + 1}", 8080, max_conns=max_conns)) for i in range(servers)
        ]
        by_server = {b.server: b for b in self.backends}
        self.connections: list[Conn] = []  # every server connection made, in order
        self.last_connection: Conn | None = None  # the server connection the proxy wrote to last
        self.dials: list[Dial] = []

        def conn_pool(server: Server) -> ConnPool:
            cp = ScriptedConnPool(
                server, self.loop, max_idle=max_idle, idle_timeout=idle_timeout,
                connect_timeout=connect_timeout, timeout=timeout, try_timeout=try_timeout,
            )  # fmt: skip
            cp.script, cp.backend = self, by_server[server]
            return cp

        self.pool = PoolRuntime(
            "app", algorithm, BalancerOptions(), [b.server for b in self.backends], make_upstream=conn_pool,
            rng=random.Random(1), clock=self.loop.time, timeout=timeout, retries=retries,
            retry_budget=retry_budget, max_queue=max_queue, queue_timeout=queue_timeout,
        )  # fmt: skip
        self.listener = HttpListener(
            "web", "127.0.0.1", 8080, Router(self.pool), loop=self.loop,
            keepalive_timeout=keepalive_timeout, request_timeout=request_timeout,
        )  # fmt: skip
        self.loop.every(self.listener.sweep_interval, self._sweep_listener)
        self.loop.every(POOL_SWEEP, self.pool.sweep)

    # -- verbs ----------------------------------------------------------------------

    def client(self, peer: str = "192.0.2.7") -> Client:
        """A new client connection (from ``peer``)."""
        return Client(self, peer)

    def connect_fails(self, server: int, kind: str = "refused") -> None:
        """Connects to ``server`` from now on are refused, or time out (``"timeout"``)."""
        assert kind in ("refused", "timeout"), kind
        self.backends[server].mode = kind

    def connect_succeeds(self, server: int) -> None:
        """Connects to ``server`` are made again (and one still pending is made now)."""
        self.backends[server].mode = "accept"
        self.run()

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass: the sweeps and every timer due meanwhile run, in time order."""
        end = self.loop.now + seconds
        while (when := self.loop.next_timer()) is not None and when <= end:
            self.loop.fire_next()
            self.run()
        self.loop.now = end
        self.run()

    def stop(self, grace: float = 10.0) -> None:
        """A graceful stop: no more connections, in-flight requests get ``grace``, then the
        connections still open are aborted (as ``Runtime.stop`` does)."""
        self.listener.stop_accepting()
        self.listener.shutdown_connections()
        self.loop.call_later(grace, self.listener.abort_connections)
        self.run()

    # -- observations ---------------------------------------------------------------

    def server(self, index: int) -> Backend:
        return self.backends[index]

    # -- the machinery --------------------------------------------------------------

    def run(self) -> None:
        """Settle: run what is due now and make (or refuse) the connects that are waiting,
        until nothing moves."""
        while True:
            moved = self.loop.run_ready()
            for dial in [d for d in self.dials if not d.done]:
                backend: Backend = dial.cpool.backend
                if backend.mode == "accept":
                    dial.settle(self._made(dial.cpool, backend))
                    moved = True
                elif backend.mode == "refused":
                    dial.settle(None, ConnectionRefusedError(111, "Connection refused"))
                    moved = True
            self.dials = [d for d in self.dials if not d.done]
            if not moved:
                return

    def _made(self, cpool: ScriptedConnPool, backend: Backend) -> UpstreamConnection:
        protocol = UpstreamConnection(cpool)
        conn = Conn(self, backend, protocol)
        backend.connections.append(conn)
        self.connections.append(conn)
        protocol.connection_made(conn.pipe)
        return protocol

    def _sweep_listener(self, now: float) -> None:
        self.listener.now = now  # (``StreamListener._sweep``: connections stamp activity with it)
        self.listener.sweep(now)
