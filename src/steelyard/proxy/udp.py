"""UDP (L4) balancing: a flow table from client address to server, each flow with its own
connected UDP socket so the server's replies come back to the right client.

A flow's life:

    (no flow) --datagram from a new client--> open: server picked, socket connected to it
    (no flow) --every server at its max_conns--> pending in the pool's queue (max_queue; its
              datagrams held, at most PENDING_MAX) --a place frees up--> open, held ones sent
                                                   --queue_timeout, the queue full--> dropped
    open --datagram either way--> open (marked busy: the sweep restamps it)
    open --no datagram either way for idle_timeout--> closed (by the listener's sweep)
    open --the table is full and a new flow is needed--> closed (the least recently used goes)
    open --ICMP error (port unreachable) on its socket--> closed, reported as the server's failure
    any --stop--> closed (UDP has nothing to drain: flows end at once)

Invariants:
- A flow is keyed by the client's address (``per_datagram = false``: every datagram of a
  client goes to one server for as long as the flow lives), or by (client address, server)
  (``per_datagram = true``: every datagram is balanced on its own, for stateless protocols
  such as DNS; replies still come back through a flow socket, one per client and server).
- A flow holds a ``Lease`` on its server (``proxy.lease``): open flows are the server's in-flight
  count (``max_conns`` bounds them). The balancer hears of a flow once: at its first reply (ok,
  elapsed = time from its first datagram), or when it ends without a reply (not ok, elapsed =
  its lifetime) or with an ICMP error (not ok; that one counts against the server's health).
- The table never holds more than ``max_flows`` flows; its order is least recently used
  first (a client datagram moves its flow to the end), so eviction is O(1).
- Per datagram: one dict lookup, one ``move_to_end``, one ``send``; replies are read
  straight from the flow's socket (``add_reader``) and sent with the listener's transport.
  Nothing on that path logs. A datagram that cannot be sent right now is dropped, as UDP may.
- Server host names are resolved once, the first time a flow needs them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..core.balancing import PickContext
from .lease import Lease
from .pool import FULL
from .resources import WARNER, is_local

if TYPE_CHECKING:
    from ..core.model import Server
    from .pool import PoolRuntime

log = logging.getLogger("steelyard.proxy")
MAX_DATAGRAM = 65535
READ_BATCH = 64  # replies read per readiness callback before yielding to the loop
PENDING_MAX = 16  # datagrams a client waiting in the queue may have held (more are dropped)


class Flow:
    __slots__ = ("L", "key", "client", "server", "sock", "fd", "busy", "last", "lease", "reported")

    def __init__(self, listener: "UdpListener", key: Any, client: Any, lease: Lease, sock: socket.socket) -> None:
        self.L = listener
        self.key = key
        self.client = client
        self.server: Server = lease.server  # type: ignore[assignment]
        self.sock = sock
        self.fd = sock.fileno()
        self.busy = False
        self.last = listener.now
        self.lease = lease
        self.reported = False  # its outcome went to the lease (its first reply)

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except BlockingIOError:
            pass  # the socket buffer is full: drop, as UDP may
        except OSError as exc:
            if is_local(exc):  # no buffers here (ENOBUFS...): drop this datagram, blame no server
                WARNER.warn(f"a datagram to {self.server.name} ({self.server.address})", exc)
                return
            self.L.close_flow(self, failed=True)  # an ICMP error from an earlier datagram (port unreachable...)

    def readable(self) -> None:
        sock, sendto, client = self.sock, self.L.transport.sendto, self.client
        try:
            for _ in range(READ_BATCH):
                sendto(sock.recv(MAX_DATAGRAM), client)
        except BlockingIOError:
            pass
        except OSError:
            self.L.close_flow(self, failed=True)
            return
        self.busy = True
        if not self.reported:
            self.reported = True
            self.lease.connected(self.L.loop.time())


class Pending:
    """A new client's first datagrams while every server is at its max_conns: it waits in the
    pool's queue (a ``lease.Waiter``) and opens its flow when a place frees up."""

    __slots__ = ("L", "addr", "datagrams", "done")

    def __init__(self, listener: "UdpListener", addr: Any, data: bytes) -> None:
        self.L, self.addr, self.datagrams, self.done = listener, addr, [data], False

    def waiting(self) -> bool:
        return not self.done and self.L.accepting

    def try_again(self, pool: "PoolRuntime") -> bool:
        server = self.L.pick_for(self.addr, drop_full=False)
        if server is FULL:
            return False
        self._end()
        if server is not None:
            flow = self.L.open_flow(self.addr, self.addr, server)
            if flow is not None:
                for data in self.datagrams:
                    flow.send(data)
        return True

    def gave_up(self) -> None:
        self._end()
        self.L.drop(f"every server is at its max_conns for {self.L.pool.queue_timeout:g}s", len(self.datagrams))

    def _end(self) -> None:
        self.done = True
        if self.L.pending.get(self.addr) is self:
            del self.L.pending[self.addr]


class UdpListener(asyncio.DatagramProtocol):
    mode = "udp"
    reuse_port = False  # (worker processes each bind the port, SO_REUSEPORT: flows hash to one of them)
    sock: Any = None  # a socket bound already (a reload binds new listeners first); None: bind here

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        pool: "PoolRuntime",
        *,
        loop: asyncio.AbstractEventLoop,
        idle_timeout: float,
        per_datagram: bool = False,
        max_flows: int = 65536,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.pool = pool
        self.loop = loop
        self.idle_timeout = idle_timeout
        self.per_datagram = per_datagram
        self.max_flows = max_flows
        self.flows: OrderedDict[Any, Flow] = OrderedDict()
        self.ctx = PickContext()
        self.now = loop.time()
        self.accepting = True
        self.transport: asyncio.DatagramTransport = None  # type: ignore[assignment]
        self._sweeper: asyncio.Task[None] | None = None
        self._addresses: dict[Server, tuple[int, Any]] = {}  # server -> (family, sockaddr), resolved once
        self._dropped = 0  # datagrams dropped for want of a server since the last log line
        self._dropped_logged = -1e9
        self.pending: dict[Any, Pending] = {}  # new clients waiting in the pool's queue

    @property
    def connections(self) -> OrderedDict[Any, Flow]:
        return self.flows

    async def start(self) -> None:
        if self.sock is not None:
            self.transport, _ = await self.loop.create_datagram_endpoint(lambda: self, sock=self.sock)
        else:
            self.transport, _ = await self.loop.create_datagram_endpoint(
                lambda: self, local_addr=(self.host, self.port), reuse_port=self.reuse_port or None
            )
        self.port = self.transport.get_extra_info("sockname")[1]
        self._sweeper = self.loop.create_task(self._sweep())

    # -- datagrams --------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flows = self.flows
        if self.per_datagram:
            server = self.pick_for(addr, drop_full=False)
            if server is FULL:  # every server holds its max_conns flows: one of them may be this client's
                server = next((t for t in self.pool.snapshot.servers if (addr, t) in flows), None)
                if server is None:
                    self.drop("every server is at its max_conns")
            if server is None:
                return
            key = (addr, server)
            flow = flows.get(key)
            if flow is None:
                flow = self.open_flow(key, addr, server)
        else:
            key = addr
            flow = flows.get(addr)
            if flow is None:
                server = self.pick_for(addr)
                if server is FULL:
                    self._wait(addr, data)
                    return
                if server is None:
                    return
                flow = self.open_flow(key, addr, server)
        if flow is None:
            return
        flows.move_to_end(key)
        flow.busy = True
        flow.send(data)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error about a client we answered: nothing to do, the flow expires on its own

    def pick_for(self, addr: Any, drop_full: bool = True) -> Server | None:
        """The server for a new flow of ``addr``: None (the datagram is dropped), or ``FULL``
        when every server is at its max_conns and a client may wait in the queue (``drop_full``:
        without a queue, that is a drop too; the caller that passes False decides itself)."""
        if not self.accepting:
            return None
        ctx = self.ctx
        ctx.client_ip = addr[0]
        try:
            server = self.pool.pick(ctx, None)
        except Exception:  # a user's algorithm failed: drop the datagram, not the loop
            log.exception("pool %s: the balancer's pick failed", self.pool.name)
            return None
        if server is None:
            self.drop("no usable server")
        elif server is FULL and drop_full and not self.pool.max_queue:
            self.drop("every server is at its max_conns")
            return None
        return server

    def _wait(self, addr: Any, data: bytes) -> None:
        """Every server is full: hold the datagram while ``addr`` waits in the pool's queue."""
        pending = self.pending.get(addr)
        if pending is not None:
            if len(pending.datagrams) < PENDING_MAX:
                pending.datagrams.append(data)
            else:
                self.drop("a client waiting for a server sent too much")
            return
        pending = Pending(self, addr, data)
        if self.pool.enqueue(pending):
            self.pending[addr] = pending
        else:
            self.drop("every server is at its max_conns and the queue is full")

    def open_flow(self, key: Any, client: Any, server: Server) -> Flow | None:
        try:
            family, sockaddr = self._addresses.get(server) or self._resolve(server)
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            self.drop(f"{server.name}: {exc}")
            return None
        try:
            sock.setblocking(False)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            self.drop(f"{server.name}: {exc}")
            return None
        flows = self.flows
        while len(flows) >= self.max_flows:
            self.close_flow(next(iter(flows.values())), failed=False)
        lease = Lease()
        lease.take(self.pool, server, self.loop.time())
        flow = Flow(self, key, client, lease, sock)
        flows[key] = flow
        self.loop.add_reader(flow.fd, flow.readable)
        return flow

    def _resolve(self, server: Server) -> tuple[int, Any]:
        family, _, _, _, sockaddr = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)[0]
        self._addresses[server] = (family, sockaddr)
        return family, sockaddr

    def drop(self, why: str, count: int = 1) -> None:
        """A datagram is dropped for want of a server (rate-limited log)."""
        self._dropped += count
        now = self.loop.time()
        if now - self._dropped_logged >= 1.0:
            log.warning(
                "listener %s: dropping datagrams: %s (%d dropped since the last such line)",
                self.name,
                why,
                self._dropped,
            )
            self._dropped, self._dropped_logged = 0, now

    def close_flow(self, flow: Flow, *, failed: bool) -> None:
        if self.flows.get(flow.key) is not flow:
            return  # already closed
        del self.flows[flow.key]
        self.loop.remove_reader(flow.fd)
        flow.sock.close()
        now = self.loop.time()
        if failed:
            flow.lease.failed(now, "an ICMP error", learn=not flow.reported)
        else:
            if not flow.reported:
                flow.lease.learn(False, now)  # no reply: the balancer learns, nothing is blamed
            flow.lease.release()

    # -- sweep and stop -----------------------------------------------------------

    async def _sweep(self) -> None:
        interval = max(0.01, min(1.0, self.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.now = now = self.loop.time()
            limit = now - self.idle_timeout
            for flow in list(self.flows.values()):
                if flow.busy:
                    flow.busy = False
                    flow.last = now
                elif flow.last < limit:
                    self.close_flow(flow, failed=False)

    def stop_accepting(self) -> None:
        self.accepting = False  # datagrams that would need a new flow are dropped
        if self.reuse_port and self.transport is not None:
            # a worker leaving: out of the SO_REUSEPORT group at once, so the kernel sends new
            # flows to the workers that stay (this worker's flows end with it)
            self.transport.close()

    def shutdown_connections(self) -> None:
        pass

    async def wait_idle(self, grace: float) -> bool:
        return True  # nothing to drain: a UDP flow has no end to wait for

    def abort_connections(self) -> None:
        for flow in list(self.flows.values()):
            self.close_flow(flow, failed=False)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.abort_connections()
        if self.transport is not None:
            self.transport.close()
