"""Token buckets per client address (pure: the caller passes the time; no clock is read here).

Algorithm: the classic token bucket (as in nginx ``limit_req`` with ``burst``, or HAProxy's
``sc_http_req_rate`` used as a limiter): every key (a client address) owns a bucket of at most
``burst`` tokens that refills at ``rate`` tokens per second; a request takes one token, and a
request that finds less than one is refused, told how long until a token is there.

Invariants:
- A new key starts with a full bucket (``burst`` requests may come at once).
- ``take`` never lets more than ``burst + rate × t`` requests through in any window of ``t``
  seconds for one key.
- The table is bounded by ``max_keys``: when it is full, the least recently used bucket is
  dropped (O(1)). That one has most likely refilled (then nothing is lost: a fresh bucket is the
  same); if not, dropping it can only favour that client, never refuse anyone.
- Time that goes backwards is treated as no time passing.
"""

from __future__ import annotations

import math
from collections import OrderedDict


class TokenBuckets:
    __slots__ = ("rate", "burst", "max_keys", "buckets")

    def __init__(self, rate: float, burst: float, max_keys: int = 65536) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_keys >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        # key -> [tokens, time of the last update]; ordered oldest use first
        self.buckets: OrderedDict[object, list[float]] = OrderedDict()

    def take(self, key: object, now: float) -> float:
        """Take one token for ``key`` at time ``now``: 0.0 when allowed, else the seconds until a
        token will be there (> 0, for a Retry-After header)."""
        buckets = self.buckets
        b = buckets.get(key)
        if b is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
            buckets[key] = [self.burst - 1.0, now]
            return 0.0
        buckets.move_to_end(key)
        tokens, last = b
        if now > last:
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return 0.0
        b[0] = tokens
        return (1.0 - tokens) / self.rate

    def retry_after(self, wait: float) -> int:
        """Whole seconds to put in Retry-After for a refusal that must wait ``wait`` seconds."""
        return max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self.buckets)
