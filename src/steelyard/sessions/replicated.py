"""``ReplicatedStore``: session clustering, all-to-all (Tomcat's DeltaManager idea, without multicast).

Every node holds every session in memory and sends each change to every peer over TCP, one JSON
object per line. Invariants:

- An entry is (sid, version, node, data or None for deleted, expires as wall-clock seconds).
  A node keeps an incoming entry only when ``(version, node)`` is greater than what it holds
  (last writer wins, ties broken by node id): a late or duplicated update never overwrites a
  newer one, and every node that has seen the same set of entries holds the same data.
- A local write takes version = held version + 1 and is applied before it is sent, with no
  await between read and write: updates through one node are atomic; concurrent updates on
  two nodes resolve, everywhere, to the one with the greater (version, node).
- Deletions are kept as tombstones until they expire, so an old entry cannot resurrect them.
- On ``start`` a node asks its peers, in order, for a full snapshot (``{"op": "snap"}`` ->
  entries then ``{"op": "end"}``) and merges the first one it gets within ``CATCH_UP``
  seconds: a node that joins or restarts catches up; with every session on every node, the
  loss of any one node loses no session.
- Per peer, changes wait in a queue of at most ``QUEUE`` (the oldest dropped beyond: a peer
  that was away that long catches up by snapshot when it returns); a sender task delivers them,
  reconnecting with a bounded back-off, and reads one acknowledgement per change.
- Synchronous replication: a write returns once every peer has acknowledged it (applied it)
  or failed to take it (a connect or delivery attempt after the write failed), and after
  ``sync_timeout`` at most.
  So the next request, on any live node, sees the change (round robin works without stickiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .store import DEFAULT_TTL, Data, Store, Update, new_id

log = logging.getLogger("steelyard.sessions")
QUEUE = 10_000
CATCH_UP = 3.0
LINE_LIMIT = 1 << 20
BACKOFF = (0.05, 1.0)  # first and longest wait between reconnects


class Entry:
    __slots__ = ("version", "node", "data", "expires")

    def __init__(self, version: int, node: str, data: Data | None, expires: float) -> None:
        self.version, self.node, self.data, self.expires = version, node, data, expires

    def wire(self, sid: str) -> bytes:
        return (
            json.dumps(
                {"op": "put", "k": sid, "v": self.version, "n": self.node, "d": self.data, "x": self.expires}
            ).encode()
            + b"\n"
        )


class ReplicatedStore(Store):
    def __init__(
        self,
        node: str,
        listen: tuple[str, int],
        peers: tuple[tuple[str, int], ...] | list,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
        sync_timeout: float = 1.0,
    ) -> None:
        self.node, self.listen, self.peers = node, listen, [tuple(p) for p in peers]
        self.ttl, self.clock = ttl, clock
        self.entries: dict[str, Entry] = {}
        self.queues: dict[tuple, deque[tuple[int, bytes]]] = {p: deque(maxlen=QUEUE) for p in self.peers}
        self.seq = 0  # local writes so far
        self.acked: dict[tuple, int] = {p: 0 for p in self.peers}  # last local write each peer applied
        self.failed: dict[tuple, int] = {p: 0 for p in self.peers}  # local writes so far when delivery last failed
        self.acks = asyncio.Event()
        self.sync_timeout = sync_timeout
        self.wakeups: dict[tuple, asyncio.Event] = {}
        self.tasks: list[asyncio.Task] = []
        self.server: asyncio.Server | None = None
        self.inbound: set[asyncio.StreamWriter] = set()  # peers' connections to this node (closed on stop)
        self.caught_up_from: tuple | None = None
        self.changed: asyncio.Event | None = None  # set on every applied remote entry (tests and tools wait on it)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, *self.listen, limit=LINE_LIMIT)
        self.listen = self.server.sockets[0].getsockname()[:2]
        for peer in self.peers:
            if await self._catch_up(peer):
                self.caught_up_from = peer
                break
        loop = asyncio.get_running_loop()
        for peer in self.peers:
            self.wakeups[peer] = asyncio.Event()
            self.tasks.append(loop.create_task(self._sender(peer)))
        self.tasks.append(loop.create_task(self._purge_loop()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        if self.server is not None:
            self.server.close()
            for writer in list(self.inbound):
                writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)

    # -- the store interface ---------------------------------------------------------

    async def get(self, sid: str) -> Data | None:
        entry = self.entries.get(sid)
        if entry is None or entry.data is None or entry.expires <= self.clock():
            return None
        return dict(entry.data)

    async def create(self, data: Data) -> str:
        sid = new_id()
        await self._synced(self._write(sid, dict(data)))
        return sid

    async def update(self, sid: str, fn: Update) -> Data | None:
        current = await self.get(sid)
        if current is None:
            return None
        data = fn(current)
        await self._synced(self._write(sid, data))
        return dict(data)

    async def delete(self, sid: str) -> None:
        if sid in self.entries:
            await self._synced(self._write(sid, None))

    async def _synced(self, seq: int) -> None:
        """Wait until every peer applied local write ``seq``, or failed to take it (at most ``sync_timeout``)."""

        def done() -> bool:
            return all(self.acked[p] >= seq or self.failed[p] >= seq for p in self.peers)

        try:
            async with asyncio.timeout(self.sync_timeout):
                while not done():
                    self.acks.clear()
                    await self.acks.wait()
        except TimeoutError:
            pass  # a slow peer gets the change later; this request does not wait for it

    # -- replication -------------------------------------------------------------------

    def _write(self, sid: str, data: Data | None) -> int:
        held = self.entries.get(sid)
        entry = Entry((held.version if held else 0) + 1, self.node, data, self.clock() + self.ttl)
        self.entries[sid] = entry
        line = entry.wire(sid)
        self.seq += 1
        for peer, queue in self.queues.items():
            queue.append((self.seq, line))
            event = self.wakeups.get(peer)
            if event is not None:
                event.set()
        return self.seq

    def apply(self, sid: str, entry: Entry) -> bool:
        """Keep ``entry`` when it is newer than what this node holds (see the module docstring)."""
        held = self.entries.get(sid)
        if held is not None and (held.version, held.node) >= (entry.version, entry.node):
            return False
        self.entries[sid] = entry
        if self.changed is not None:
            self.changed.set()
        return True

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until ``predicate()`` holds, re-checking after each applied entry."""
        if self.changed is None:
            self.changed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return predicate()
        return True

    def _apply_line(self, msg: dict[str, Any]) -> None:
        self.apply(str(msg["k"]), Entry(int(msg["v"]), str(msg["n"]), msg["d"], float(msg["x"])))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.inbound.add(writer)
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                if msg.get("op") == "put":
                    self._apply_line(msg)
                    if msg.get("ack"):
                        writer.write(b"+\n")
                elif msg.get("op") == "snap":
                    now = self.clock()
                    live = [e.wire(k) for k, e in list(self.entries.items()) if e.expires > now]
                    writer.write(b"".join(live) + b'{"op": "end"}\n')
                    await writer.drain()
        except (OSError, ValueError, KeyError, TypeError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a peer that went away or spoke nonsense: its connection ends, nothing else
        finally:
            self.inbound.discard(writer)
            writer.close()

    async def _catch_up(self, peer: tuple) -> bool:
        """Merge a full snapshot from ``peer``; False when it is not there or too slow."""
        writer = None
        try:
            async with asyncio.timeout(CATCH_UP):
                reader, writer = await asyncio.open_connection(*peer, limit=LINE_LIMIT)
                writer.write(b'{"op": "snap"}\n')
                while line := await reader.readline():
                    msg = json.loads(line)
                    if msg.get("op") == "end":
                        return True
                    self._apply_line(msg)
        except (OSError, ValueError, KeyError, TypeError, TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            if writer is not None:
                writer.close()
        return False

    async def _sender(self, peer: tuple) -> None:
        """Connect at once, then deliver queued changes and read their acknowledgements. On a
        failure, the writes so far stop waiting for this peer; a new write ends the back-off
        (its writer waits for one fresh attempt)."""
        queue, event = self.queues[peer], self.wakeups[peer]
        writer = None
        wait = BACKOFF[0]
        while True:
            try:
                if writer is None:
                    async with asyncio.timeout(1.0):
                        reader, writer = await asyncio.open_connection(*peer)
                    wait = BACKOFF[0]
                if not queue:
                    event.clear()
                    await event.wait()
                    continue
                batch = list(queue)
                writer.write(b"".join(line[:-2] + b', "ack": 1}\n' for _, line in batch))
                async with asyncio.timeout(2.0):
                    await writer.drain()
                    for _ in batch:  # one acknowledgement per change, in order
                        if await reader.readline() != b"+\n":
                            raise OSError("the peer closed the connection")
                for _ in batch:
                    queue.popleft()  # (only what was written: new lines may have come meanwhile)
                self.acked[peer] = batch[-1][0]
                self.acks.set()
            except (OSError, TimeoutError):
                self.failed[peer] = self.seq  # every write so far: not waited for on this peer
                self.acks.set()
                if writer is not None:
                    writer.close()
                writer = None
                event.clear()
                with contextlib.suppress(TimeoutError):  # back-off; a new write retries at once
                    async with asyncio.timeout(wait):
                        await event.wait()
                wait = min(wait * 2, BACKOFF[1])

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(self.ttl / 4, 30.0)))
            now = self.clock()
            for sid in [k for k, e in self.entries.items() if e.expires <= now]:
                del self.entries[sid]
