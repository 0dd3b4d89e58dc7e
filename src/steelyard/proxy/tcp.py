"""TCP (L4) relay: one client connection, balanced once, relayed byte for byte to one server.

State machine of a ``TcpRelay`` (the client side's protocol; ``ServerSide`` is its partner):

    connecting --a server accepts--> relaying (the PROXY header, if any, is the first write)
    connecting --refused / connect_timeout--> connecting to another server (those tried excluded),
                                              at most once per server in the pool
    connecting --every server at its max_conns--> queued (the pool's queue, at most max_queue)
    queued --a place frees up--> connecting;  --queue_timeout, or the queue is full--> closed
    connecting --no server left, none usable, the picker failed--> closed (one log line, rate-limited)
    relaying --EOF from one side--> half-closed: EOF passed on (write_eof), the other way still flows
    half-closed --EOF from the other side--> closed (each transport closes once its buffer drained)
    relaying / half-closed --either connection lost--> closed (the other aborted if that one was reset)
    relaying / half-closed --no byte either way for idle_timeout--> aborted (by the listener's sweep)
    any --stop grace over--> aborted

Invariants:
- The client's transport does not read until a server connection exists: what the client
  sends early waits in the kernel (which pushes back on the client), and its EOF is seen after.
  uvloop starts reading only after ``connection_made`` returns, so the pause made there does
  not hold: the first read arrives with no server yet, is kept in ``early`` (sent first) and
  pauses the transport for real.
- Each connect attempt holds a ``Lease`` on its server (``proxy.lease``): in flight from the
  pick until the connect fails or the relayed connection ends (least_conn counts open
  connections, ``max_conns`` bounds them); its outcome is reported as soon as the connect
  succeeds or fails, with the connect time (least_time balances on connect time; a
  long-lived connection would otherwise report nothing for hours).
- Flow control: a side whose outgoing buffer passes its high-water mark pauses reading on
  the other side (``pause_writing``), and resumes it below the low-water mark.
- The per-chunk path is one ``write`` and one attribute store (``busy``, read by the idle
  sweep); nothing is logged, copied or looked up there.
- A relay is forgotten by its listener only when both of its connections are gone.
- With SNI routes (``sni.py``), the client is read before any server is picked, until its
  ClientHello's server name shows (or that it sends none: the listener's pool); those bytes go
  to the server first, unchanged, so TLS passes through undecrypted. No ClientHello within
  ``SNI_WAIT`` seconds: the connection is aborted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..core.balancing import PickContext
from .lease import Lease
from .pool import FULL
from .proxy_protocol import header as proxy_header
from .reset import reset
from .resources import WARNER, is_local
from .sni import MORE, client_hello_name
from .sni import route as sni_route
from .splice import Spliced

if TYPE_CHECKING:
    from ..core.model import Server
    from .l4listener import TcpListener
    from .pool import PoolRuntime

log = logging.getLogger("steelyard.proxy")
SNI_WAIT = 5.0  # seconds a client routed by SNI has to send its ClientHello


class ServerSide(asyncio.Protocol):
    """The server connection of a relay: forwards to the client, passes on EOF and pressure."""

    __slots__ = ("relay", "transport", "peer")

    def __init__(self, relay: "TcpRelay") -> None:
        self.relay = relay
        self.peer = relay.transport  # the client's transport
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        relay = self.relay
        relay.opened += 1
        if relay.done:  # the client left while this connection was being made
            self.transport.abort()
        else:
            relay.up = self

    def data_received(self, data: bytes) -> None:
        try:
            self.peer.write(data)
        except RuntimeError:  # the client's transport is already closed (it reset)
            self.transport.abort()
            return
        self.relay.busy = True

    def eof_received(self) -> bool:
        return self.relay.eof(self.peer)

    def pause_writing(self) -> None:  # the server does not keep up: stop reading the client
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.lost(self.peer, exc)


class TcpRelay(asyncio.Protocol):
    """The client connection of a relay, and the relay's state (see the module docstring)."""

    __slots__ = (
        "L",
        "transport",
        "up",
        "peer",
        "lease",
        "busy",
        "last",
        "eofs",
        "opened",
        "done",
        "task",
        "early",
        "spliced",
    )

    def __init__(self, listener: "TcpListener") -> None:
        self.L = listener
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.up: ServerSide | None = None  # the server connection, once made
        self.peer: asyncio.Transport | None = None  # its transport (the per-chunk write target)
        self.lease: Lease | None = None  # on the server connected to (or being connected to)
        self.busy = False  # a byte moved since the last sweep
        self.last = listener.now
        self.eofs = 0
        self.opened = 0  # connections made (client, server); each one lost counts down
        self.done = False  # ending: no new server connection is kept
        self.task: asyncio.Task[None] | asyncio.TimerHandle | None = None
        self.early: list[bytes] = []  # what the client sent before a server was connected
        self.spliced: Spliced | None = None  # the zero-copy path, when the listener uses it

    # -- connecting -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.opened = 1
        transport.pause_reading()  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        if not self.L.admit(self, peer[0] if isinstance(peer, tuple) else ""):  # over max_connections
            self.done = True
            transport.close()
            return
        if self.L.sni_routes:  # read the ClientHello first: its server name picks the pool
            self.transport.resume_reading()
            self.task = self.L.loop.call_later(SNI_WAIT, self._sni_timeout)
            return
        self.task = self.L.loop.create_task(self._connect(self.L.pool))

    def _sni(self, ended: bool = False) -> None:
        """Bytes arrived before a pool was chosen: once the ClientHello (or the lack of one) shows,
        or the client half-closed (``ended``), pick the pool and connect."""
        name = client_hello_name(b"".join(self.early))
        if name is MORE:
            if not ended:
                return
            name = None
        self.task.cancel()  # type: ignore[union-attr]  # (the ClientHello timer)
        self.transport.pause_reading()
        self.task = self.L.loop.create_task(self._connect(sni_route(name, self.L.sni_routes, self.L.pool)))

    def _sni_timeout(self) -> None:
        if self.peer is None and not self.done:
            self.transport.abort()  # no ClientHello within SNI_WAIT: not a client worth a server

    async def _connect(self, pool: "PoolRuntime") -> None:
        L = self.L
        loop, clock = L.loop, L.loop.time
        peer = self.transport.get_extra_info("peername")
        ctx = PickContext(peer[0] if isinstance(peer, tuple) else "")
        tried: list[Server] = []
        why = "no usable server"
        for _ in range(max(1, len(pool.snapshot.servers))):
            try:
                server = pool.pick(ctx, None, tried)
            except Exception:  # a user's algorithm failed: drop this client, not the loop
                log.exception("pool %s: the balancer's pick failed", pool.name)
                break
            if server is None:
                break
            if server is FULL:
                lease = await self._queued(pool, ctx, tried)
                if lease is None:
                    why = "every server is at its max_conns, and the queue is full or waited too long"
                    break
                if lease.server is None:
                    break  # (granted, but the picker found no server left)
                server = lease.server
            else:
                lease = Lease()
                lease.take(pool, server, clock())
            tried.append(server)
            self.lease = lease
            try:
                async with asyncio.timeout(L.connect_timeout):
                    await loop.create_connection(lambda: ServerSide(self), server.host, server.port)
            except (OSError, TimeoutError) as exc:
                if is_local(exc):  # out of descriptors (or ports): no server is to blame, none would do
                    lease.abandon()
                    WARNER.warn(f"connect to {server.name} ({server.address})", exc)
                    why = f"no local resources ({exc.strerror or exc})"
                    break
                why = f"{server.name}: {'connect timeout' if isinstance(exc, TimeoutError) else exc.strerror or exc}"
                lease.failed(clock(), why)
                continue
            except BaseException:  # cancelled (the client left, abort at stop): not the server's fault
                lease.abandon()
                raise
            lease.connected(clock())
            if self.done or self.up is None:  # the client left meanwhile
                self._release()
                return
            self._relay(peer)
            return
        L.unreachable(peer, why, len(tried))
        self.transport.close()

    async def _queued(self, pool: "PoolRuntime", ctx: PickContext, tried: list["Server"]) -> Lease | None:
        """Wait in the pool's queue for a server below its max_conns: its lease, or None when
        the queue is full or ``queue_timeout`` passed."""
        granted: asyncio.Future[Lease | None] = self.L.loop.create_future()
        if not pool.enqueue(Waiting(self, ctx, tried, granted)):
            return None
        try:
            return await granted
        except asyncio.CancelledError:  # the client left (or a stop) while it waited
            if granted.done() and not granted.cancelled() and granted.result() is not None:
                granted.result().abandon()  # type: ignore[union-attr]  # (granted just before)
            raise

    def _relay(self, client: object) -> None:
        up = self.up
        self.peer = up.transport  # type: ignore[union-attr]
        if self.L.send_proxy is not None:
            self.peer.write(proxy_header(self.L.send_proxy, client, self.transport.get_extra_info("sockname")))
        early, self.early = self.early, []
        for data in early:
            if data:
                self.peer.write(data)
            elif not self.eof(self.peer):
                return
        self.busy = True
        if (
            self.L.splice
            and not early
            and not self.transport.get_write_buffer_size()
            and not self.peer.get_write_buffer_size()
        ):
            self.peer.pause_reading()  # from here on the bytes move in the kernel (splice.py)
            self.transport.pause_reading()  # (again: uvloop ignores a pause inside connection_made)
            self.spliced = Spliced(self, self.transport, self.peer)
            return
        self.transport.resume_reading()

    # -- relaying ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self.peer.write(data)  # type: ignore[union-attr]
        except AttributeError:  # no server yet (uvloop may read once before pause_reading holds)
            self.early.append(data)
            if self.L.sni_routes and self.lease is None and not isinstance(self.task, asyncio.Task):
                self._sni()  # (reading the ClientHello)
            else:
                self.transport.pause_reading()
            return
        except RuntimeError:  # the server's transport is already closed (it reset)
            self.transport.abort()
            return
        self.busy = True

    def eof_received(self) -> bool:
        if self.peer is None:
            self.early.append(b"")  # (an empty chunk stands for the EOF, passed on after the data)
            if self.L.sni_routes and self.lease is None and not isinstance(self.task, asyncio.Task):
                self._sni(ended=True)
            return True
        return self.eof(self.peer)

    def eof(self, towards: asyncio.Transport) -> bool:
        """One side half-closed: pass it on ``towards`` the other; True keeps that side open."""
        self.eofs += 1
        if self.eofs < 2 and towards.can_write_eof() and not towards.is_closing():
            towards.write_eof()
            return True
        self.close()
        return False

    def pause_writing(self) -> None:  # the client does not keep up: stop reading the server
        self.peer.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.peer.resume_reading()  # type: ignore[union-attr]

    # -- endings ----------------------------------------------------------------

    def close(self) -> None:
        """Close both connections once their buffers drained."""
        self.done = True
        if self.spliced is not None:
            self.spliced.close()
        self.transport.close()
        if self.peer is not None:
            self.peer.close()

    def abort(self) -> None:
        self.done = True
        if isinstance(self.task, asyncio.Task) and not self.task.done():
            self.task.cancel()
        elif self.task is not None:
            self.task.cancel()  # (the ClientHello timer)
        if self.spliced is not None:
            self.spliced.close()
        self.transport.abort()
        if self.up is not None:
            self.up.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(self.peer, exc)

    def lost(self, other: asyncio.Transport | None, exc: Exception | None) -> None:
        """One connection is gone: end the other (abort it after a reset, else let it drain)."""
        self.done = True
        if other is None:  # the client left before the relay began: its server (if connected) goes too
            if isinstance(self.task, asyncio.Task) and not self.task.done():
                self.task.cancel()  # (picked, queued or connecting)
            if self.up is not None:
                other = self.up.transport
        if other is not None and not other.is_closing():
            if exc is None:
                other.close()
            else:
                reset(other)  # (a reset passed on as a reset: a FIN would read as a clean end)
        self.opened -= 1
        if self.opened <= 0:
            self._release()
            self.L.forget(self)

    def _release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()


class Waiting:
    """A TCP client waiting in its pool's queue (a ``lease.Waiter``): granted a lease on a
    server with room (taken at once, so the next one waiting cannot take the same place), or
    None when it waited ``queue_timeout``."""

    __slots__ = ("relay", "ctx", "tried", "granted")

    def __init__(
        self, relay: TcpRelay, ctx: PickContext, tried: list["Server"], granted: "asyncio.Future[Lease | None]"
    ) -> None:
        self.relay, self.ctx, self.tried, self.granted = relay, ctx, tried, granted

    def waiting(self) -> bool:
        return not self.granted.done() and not self.relay.done

    def try_again(self, pool: "PoolRuntime") -> bool:
        try:
            server = pool.pick(self.ctx, None, self.tried)
        except Exception:
            log.exception("pool %s: the balancer's pick failed", pool.name)
            server = None
        if server is FULL:
            return False
        lease = None
        if server is not None:
            lease = Lease()
            lease.take(pool, server, pool.clock())
        self.granted.set_result(lease)
        return True

    def gave_up(self) -> None:
        self.granted.set_result(None)
