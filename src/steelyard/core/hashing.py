"""Hash math shared by the hashing balancers: a stable key hash and Maglev tables.

Invariants:

- ``hash64`` is stable across processes, hosts and Python versions (blake2b, not
  the built-in ``hash``, whose str hashing is salted per process), so every worker
  and every cluster peer maps a key to the same server.
- A Maglev table depends only on the multiset of (name, weight) of its items, not
  on their order: rebuilding from the same servers maps every key identically.
- Every item of weight > 0 owns at least one slot, so a probe walk reaches it;
  its share of the slots is ≈ w / Σw. Items of weight 0 own none.
- The table size is a prime from ``MAGLEV_PRIMES`` with at least 100 slots per
  item (the paper's M ≥ 100·N, which keeps shares within ~1% of the target).
  Sizes change only at those coarse steps because a size change remaps nearly
  every key; removing one of N items at a fixed size remaps ≈ 1/N of the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from hashlib import blake2b
from typing import Generic, TypeVar

T = TypeVar("T")

#: Table sizes. Few and far apart on purpose (see the module docstring); 5003 slots
#: cover pools of up to 50 servers and fill in a few milliseconds.
MAGLEV_PRIMES = (5003, 65537, 655373, 1048573)


def hash64(key: str) -> int:
    """A stable, well-mixed 64-bit hash of ``key``."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little")


def maglev_size(n: int) -> int:
    """The smallest listed prime that gives ``n`` items at least 100 slots each."""
    for prime in MAGLEV_PRIMES:
        if prime >= 100 * n:
            return prime
    if n > MAGLEV_PRIMES[-1]:
        raise ValueError(f"a Maglev table cannot hold {n} items")
    return MAGLEV_PRIMES[-1]


def maglev_populate(names: Sequence[str], weights: Sequence[int], size: int) -> list[int]:
    """Fill a Maglev lookup table; returns, per slot, the index of its owner in ``names``.

    Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
    NSDI 2016, §3.4 (Algorithm 1). Each item walks its own permutation of the slots
    (``offset + j·skip mod size``, both derived from its name) and claims the next
    free slot when its turn comes. Weights: the paper's items take one turn per
    round; here an item earns ``w`` credit per round and takes a turn per ``max(w)``
    credit, so turns, and therefore slots, are ≈ proportional to weight. Credit
    starts at ``max(w) - w`` so that every item claims a slot in the first round.

    ``size`` must be a prime (so every skip visits every slot) and ≥ the number of
    items with weight > 0. Returns ``[]`` when no item has a positive weight.
    """
    # Name order, not caller order, so that the same set always yields the same table.
    order = sorted((i for i, w in enumerate(weights) if w > 0), key=lambda i: (names[i], weights[i]))
    k = len(order)
    if not k:
        return []
    if size < k:
        raise ValueError(f"a Maglev table of {size} slots cannot hold {k} items")
    pos: list[int] = []
    skip: list[int] = []
    for i in order:
        digest = blake2b(names[i].encode(), digest_size=16, person=b"maglev").digest()
        pos.append(int.from_bytes(digest[:8], "little") % size)
        skip.append(int.from_bytes(digest[8:], "little") % (size - 1) + 1)
    weight = [weights[i] for i in order]
    top = max(weight)
    table = [-1] * size
    left = size
    if min(weight) == top:  # equal weights (the usual case): every item takes a turn each round
        turns = list(range(k))
        while True:
            for j in turns:
                c = pos[j]
                step = skip[j]
                while table[c] >= 0:
                    c += step
                    if c >= size:
                        c -= size
                table[c] = order[j]
                c += step
                pos[j] = c - size if c >= size else c
                left -= 1
                if not left:
                    return table
    credit = [top - w for w in weight]
    while True:
        for j in range(k):
            credit[j] += weight[j]
            if credit[j] < top:
                continue
            credit[j] -= top
            c = pos[j]
            step = skip[j]
            while table[c] >= 0:
                c += step
                if c >= size:
                    c -= size
            table[c] = order[j]
            c += step
            pos[j] = c - size if c >= size else c
            left -= 1
            if not left:
                return table


class Maglev(Generic[T]):
    """A Maglev lookup table over ``items`` (Maglev, NSDI'16): ``slots[h % size]``.

    ``items`` holds only the items that own slots (weight > 0), in caller order, less the
    ``dead`` ones: items that own slots but must not be returned (see ``restricted``).
    ``lookup`` reads the slot alone, so it is for tables without dead items; ``first``
    skips dead items.
    """

    __slots__ = ("dead", "items", "size", "slots")

    def __init__(
        self,
        items: Sequence[T],
        names: Sequence[str],
        weights: Sequence[int],
        size: int | None = None,
    ) -> None:
        self.items: tuple[T, ...] = tuple(item for item, w in zip(items, weights) if w > 0)
        if size is None:
            size = maglev_size(len(self.items))
        self.slots: list[T] = [items[i] for i in maglev_populate(names, weights, size)]
        self.size = len(self.slots)  # 0 when there is no item
        self.dead: frozenset[T] = frozenset()

    def restricted(self, keep: Collection[T], partial: bool = False) -> Maglev[T] | None:
        """This table serving only the items in ``keep`` (the slots are shared, not copied):
        a lookup that lands on another item's slot moves on to the slot's next usable owner,
        so only the keys of items left out move, and each to the same place every time.

        ``None`` when some item of ``keep`` owns no slot here (a new item, or one whose
        weight changed: the table must be built again), unless ``partial``: then such items
        are left out too (they get nothing until a new table is built) — ``None`` only
        when no item of ``keep`` is left.
        """
        owned = set(self.items) | self.dead
        wanted = set(keep)
        if not wanted <= owned and not partial:
            return None
        items = tuple(item for item in (*self.items, *self.dead) if item in wanted)
        if not items:
            return None
        table: Maglev[T] = Maglev.__new__(Maglev)
        table.slots, table.size, table.items = self.slots, self.size, items
        table.dead = frozenset(owned - wanted)
        return table

    def lookup(self, h: int) -> T | None:
        """The owner of hash ``h``; ``None`` only for an empty table. Ignores ``dead``."""
        return self.slots[h % self.size] if self.size else None

    def first(self, h: int, accept: Callable[[T], bool]) -> T | None:
        """The first live item ``accept`` allows, probing slots ``h, h+1, ...`` (mod size).

        This is "the next server for this key": deterministic per (key, accept), and
        the fallbacks of different keys spread in proportion to the slot shares,
        because neighbouring slots have independent owners. ``None`` when ``accept``
        refuses every item. Walks at most one full table, since every item owns a slot;
        whether any item is acceptable at all is asked only after a short walk found none.
        """
        size = self.size
        if not size:
            return None
        slots, dead = self.slots, self.dead
        i = h % size
        for _ in range(64):
            item = slots[i]
            if item not in dead and accept(item):
                return item
            i += 1
            if i == size:
                i = 0
        if not any(accept(item) for item in self.items):
            return None
        while True:
            item = slots[i]
            if item not in dead and accept(item):
                return item
            i += 1
            if i == size:
                i = 0
