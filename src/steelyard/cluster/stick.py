"""The source-address stick table shared by the cluster.

``SharedStickTable`` is a ``core.sticky.StickTable`` that reports every *new or changed* entry
(``share(client, server)``; refreshes of an existing entry stay local, so a sticky client's every
request costs no Redis traffic) and takes entries learned by other nodes with ``learn`` (never
reported back). The data plane still only reads the local table: a pick never waits on Redis.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.sticky import StickTable


class SharedStickTable(StickTable):
    __slots__ = ("share",)

    def __init__(
        self, size: int, expire: float, *, clock: Callable[[], float], share: Callable[[str, str], None]
    ) -> None:
        super().__init__(size, expire, clock=clock)
        self.share = share

    @classmethod
    def adopt(cls, table: StickTable, share: Callable[[str, str], None]) -> SharedStickTable:
        """The same table (its entries kept), now shared."""
        shared = cls(table.size, table.expire, clock=table.clock, share=share)
        shared.entries = table.entries
        return shared

    def put(self, key: str, server: str) -> None:
        old = self.entries.get(key)
        super().put(key, server)
        if old is None or old[0] != server:
            self.share(key, server)

    def learn(self, key: str, server: str) -> None:
        """An entry another node stored (not shared again)."""
        StickTable.put(self, key, server)
