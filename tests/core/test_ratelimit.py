"""Token buckets per client: burst, refill, Retry-After, bounded table (fake clock: plain floats)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steelyard.core.ratelimit import TokenBuckets


def test_a_new_client_gets_its_burst_then_waits_for_the_refill():
    tb = TokenBuckets(rate=2.0, burst=3)
    assert [tb.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = tb.take("a", 0.0)
    assert wait == pytest.approx(0.5)  # one token every 1/rate seconds
    assert tb.retry_after(wait) == 1
    assert tb.take("a", 0.5) == 0.0
    assert tb.take("a", 0.5) > 0


def test_clients_are_apart():
    tb = TokenBuckets(rate=1.0, burst=1)
    assert tb.take("a", 0.0) == 0.0 and tb.take("a", 0.0) > 0
    assert tb.take("b", 0.0) == 0.0


def test_the_bucket_never_holds_more_than_burst():
    tb = TokenBuckets(rate=10.0, burst=2)
    tb.take("a", 0.0)
    assert [tb.take("a", 1000.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert tb.take("a", 1000.0) > 0


def test_time_going_backwards_adds_no_tokens():
    tb = TokenBuckets(rate=1.0, burst=1)
    tb.take("a", 10.0)
    assert tb.take("a", 5.0) > 0


def test_the_table_is_bounded_and_drops_the_least_recently_used():
    tb = TokenBuckets(rate=1.0, burst=1, max_keys=3)
    for k in "abc":
        tb.take(k, 0.0)
    tb.take("a", 0.0)  # a is used again: b is now the oldest
    tb.take("d", 0.0)
    assert len(tb) == 3 and set(tb.buckets) == {"a", "c", "d"}


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBuckets(rate=1, burst=0)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.1, 100), burst=st.integers(1, 50), steps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_never_more_than_burst_plus_rate_times_elapsed(rate, burst, steps):
    tb = TokenBuckets(rate=rate, burst=burst)
    now, allowed = 0.0, 0
    for dt in steps:
        now += dt
        allowed += tb.take("k", now) == 0.0
    assert allowed <= burst + rate * now + 1e-6
