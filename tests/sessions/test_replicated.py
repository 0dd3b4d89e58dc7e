"""steelyard.sessions.replicated: three in-process nodes on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

import asyncio
import socket

from steelyard.sessions.replicated import Entry, ReplicatedStore

BOUND = 10.0


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def cluster(ports: list[int], only: list[int] | None = None) -> dict[int, ReplicatedStore]:
    nodes = {}
    for i in only if only is not None else range(len(ports)):
        peers = [("127.0.0.1", p) for j, p in enumerate(ports) if j != i]
        node = ReplicatedStore(f"n{i}", ("127.0.0.1", ports[i]), peers)
        await node.start()
        nodes[i] = node
    return nodes


async def everywhere(nodes, sid: str, want) -> bool:
    async def one(node):
        async def check() -> bool:
            return await node.get(sid) == want

        # predicates are sync: read the entry directly (get's rules: not deleted, not expired)
        def pred() -> bool:
            e = node.entries.get(sid)
            return (e.data if e is not None else None) == want

        return await node.wait_for(pred, BOUND)

    return all(await asyncio.gather(*(one(n) for n in nodes)))


async def test_write_on_one_node_is_read_on_the_others_and_survives_a_restart() -> None:
    ports = free_ports(3)
    nodes = await cluster(ports)
    try:
        sid = await nodes[0].create({"user": "ann", "count": 0})
        assert await everywhere(nodes.values(), sid, {"user": "ann", "count": 0})
        await nodes[1].update(sid, lambda d: {**d, "count": d["count"] + 1})
        assert await everywhere(nodes.values(), sid, {"user": "ann", "count": 1})
        assert await nodes[2].get(sid) == {"user": "ann", "count": 1}
        # node 2 goes away; more changes happen meanwhile
        await nodes.pop(2).stop()
        other = await nodes[0].create({"user": "bob"})
        await nodes[1].update(sid, lambda d: {**d, "count": d["count"] + 1})
        assert await everywhere(nodes.values(), sid, {"user": "ann", "count": 2})
        # it comes back (empty) on the same address and catches up from a peer at once
        nodes.update(await cluster(ports, only=[2]))
        assert nodes[2].caught_up_from is not None
        assert await nodes[2].get(sid) == {"user": "ann", "count": 2}
        assert await nodes[2].get(other) == {"user": "bob"}
        # and takes part again: its writes reach the others
        await nodes[2].update(sid, lambda d: {**d, "count": d["count"] + 1})
        assert await everywhere(nodes.values(), sid, {"user": "ann", "count": 3})
        await nodes[0].delete(other)
        assert await everywhere(nodes.values(), other, None)
        assert await nodes[1].get(other) is None
    finally:
        for n in nodes.values():
            await n.stop()


async def test_concurrent_updates_resolve_to_the_newest_version_everywhere() -> None:
    ports = free_ports(3)
    nodes = await cluster(ports)
    try:
        sid = await nodes[0].create({"v": 0})
        assert await everywhere(nodes.values(), sid, {"v": 0})
        # two nodes write version 2 at once: the tie goes to the greater node id, on every node
        await asyncio.gather(
            nodes[0].update(sid, lambda d: {"v": "from n0"}), nodes[1].update(sid, lambda d: {"v": "from n1"})
        )
        assert await everywhere(nodes.values(), sid, {"v": "from n1"})
        assert {(n.entries[sid].version, n.entries[sid].node) for n in nodes.values()} == {(2, "n1")}
    finally:
        for n in nodes.values():
            await n.stop()


def test_late_or_duplicate_updates_never_overwrite_newer_ones() -> None:
    node = ReplicatedStore("n0", ("127.0.0.1", 0), [])
    new = Entry(5, "n1", {"v": 5}, 1e12)
    assert node.apply("s", new)
    assert not node.apply("s", Entry(4, "n2", {"v": 4}, 1e12))  # late
    assert not node.apply("s", Entry(5, "n1", {"v": "dup"}, 1e12))  # duplicate
    assert not node.apply("s", Entry(5, "n0", {"v": "tie, smaller node"}, 1e12))
    assert node.entries["s"].data == {"v": 5}
    assert node.apply("s", Entry(6, "n0", None, 1e12))  # a newer deletion wins
    assert not node.apply("s", Entry(5, "n9", {"v": "old"}, 1e12))  # and cannot be undone by an older write


async def test_expired_sessions_are_gone() -> None:
    clock = [1000.0]
    node = ReplicatedStore("n0", ("127.0.0.1", 0), [], ttl=60, clock=lambda: clock[0])
    sid = await node.create({"a": 1})
    clock[0] += 59
    assert await node.get(sid) == {"a": 1}
    clock[0] += 2
    assert await node.get(sid) is None
