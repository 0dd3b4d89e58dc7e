"""Client-address affinity: consistent hashing on the downstream peer's address.

Invariants: those of ``consistent_hash``, with the client address as the key: one
client goes to one server while the server set is unchanged.
"""

from __future__ import annotations

from .base import PickContext
from .consistent_hash import ConsistentHash


class IpHash(ConsistentHash):
    """IP hash (the role of nginx's ``ip_hash``) done as Maglev consistent hashing
    (NSDI'16) on ``ctx.client_ip``, so removing one of N servers remaps only ≈ 1/N of
    the clients. Honours ``hash_balance_factor`` like ``consistent_hash``.
    """

    name = "ip_hash"

    def key_of(self, ctx: PickContext) -> str:
        return ctx.client_ip
