"""The shared in-flight counts: one row per worker, readers sum, the control process totals."""

from __future__ import annotations

import random

import pytest

from steelyard.core.balancing.base import BalancerOptions, PickContext
from steelyard.core.balancing.cluster_load import ClusterLeastConn
from steelyard.core.model import Server
from steelyard.workers.slots import COLUMNS, HIGH, ROWS, SharedLoad, SlotTable, TotalLoad

CTX = PickContext("10.0.0.1")


@pytest.fixture
def table():
    t = SlotTable()
    yield t
    t.close()


def worker_view(table: SlotTable, row: int, cols: list[int]) -> list[Server]:
    """One worker's servers (same columns, its own row), as the worker process builds them."""
    return [Server(f"s{c}", "127.0.0.1", 9000 + c, load=SharedLoad(table.cells, row, c)) for c in cols]


def test_each_worker_writes_its_row_and_reads_the_others(table) -> None:
    cols = [table.column(("app", "a")), table.column(("app", "b"))]
    one, two = table.take_row(), table.take_row()
    w1, w2 = worker_view(table, one, cols), worker_view(table, two, cols)
    w1[0].load.active += 3
    w2[0].load.active += 2
    w2[1].load.active += 1
    assert (w1[0].load.active, w1[0].load.remote) == (3, 2)  # own count, the other worker's
    assert (w2[0].load.active, w2[0].load.remote) == (2, 3)
    assert (w1[1].load.active, w1[1].load.remote) == (0, 1)
    totals = [TotalLoad(table.cells, c) for c in cols]
    assert [t.active for t in totals] == [5, 1]


def test_other_balancers_load_is_added_by_every_worker(table) -> None:
    col = table.column(("app", "a"))
    row = table.take_row()
    (server,) = worker_view(table, row, [col])
    total = TotalLoad(table.cells, col)
    total.remote = 7  # the cluster's exchange, in the control process
    server.load.active = 1
    assert server.load.remote == 7 and total.active == 1 and total.remote == 7


def test_least_conn_in_one_worker_sees_the_other_workers_connections(table) -> None:
    cols = [table.column(("app", n)) for n in "abc"]
    rows = [table.take_row(), table.take_row()]
    views = [worker_view(table, r, cols) for r in rows]
    pickers = [ClusterLeastConn(v, rng=random.Random(1), clock=lambda: 0.0, options=BalancerOptions()) for v in views]
    order = [0, 0, 1, 0, 1, 1, 1, 0, 0]  # which worker accepts each long-lived connection
    for w in order:
        pickers[w].pick(CTX).load.active += 1
    totals = [TotalLoad(table.cells, c).active for c in cols]
    assert totals == [3, 3, 3]  # every server got a third, though the workers got 5 and 4
    # (each worker counting only its own would have sent both first connections to "a")


def test_a_row_given_back_is_zeroed_and_rows_are_handed_out_lowest_first(table) -> None:
    col = table.column(("app", "a"))
    first, second = table.take_row(), table.take_row()
    assert (first, second) == (1, 2)  # row 0 is the cluster row
    (server,) = worker_view(table, first, [col])
    server.load.active = 4
    table.give_back_row(first)  # its worker died: its connections are gone
    assert TotalLoad(table.cells, col).active == 0
    assert table.take_row() == 1


def test_columns_are_reused_only_when_unpublished_and_idle_longest_free_first(table) -> None:
    a, b = table.column(("app", "a")), table.column(("app", "b"))
    assert a != b and table.column(("app", "a")) == a
    row = table.take_row()
    (server,) = worker_view(table, row, [b])
    server.load.active = 1
    table.release_unused({("app", "a")})  # b is gone from the pool but still has a request in flight
    assert ("app", "b") in table.columns
    server.load.active = 0
    table.release_unused({("app", "a")})
    assert ("app", "b") not in table.columns
    assert table.column(("app", "c")) not in (a, b)  # b's column goes to the back of the free list
    assert HIGH not in table.free_columns  # (row 0's last cell says which rows are in use)


def test_readers_see_every_row_in_use_however_many_generations_overlap(table) -> None:
    col = table.column(("app", "a"))
    rows = [table.take_row() for _ in range(7)]  # e.g. three generations of two, and a restart
    assert table.cells[HIGH] == max(rows) == 7
    views = [worker_view(table, r, [col])[0] for r in rows]
    views[-1].load.active = 2  # the highest row
    views[0].load.active = 1
    assert views[0].load.remote == 2 and views[3].load.remote == 3
    table.give_back_row(rows[-1])
    assert table.cells[HIGH] == 6 and views[0].load.remote == 0


def test_a_second_mapping_of_the_same_descriptor_shares_the_counts(table) -> None:
    other = SlotTable(table.fd)  # what a worker process does with the descriptor it inherited
    try:
        other.cells[3 * COLUMNS + 5] = 11
        assert table.cells[3 * COLUMNS + 5] == 11
        assert len(other.cells) == ROWS * COLUMNS
    finally:
        other.close()
