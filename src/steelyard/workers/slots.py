"""In-flight counts shared by the processes of one balancer, without locks.

One shared memory block (a ``memfd``, inherited by the workers) holds a table of 64-bit
counters: ``ROWS`` rows of ``COLUMNS``. Row 0 is written by the control process only: other
balancers' load (``[cluster]``), added like a worker's, and in its last cell (``HIGH``) the
highest row a worker holds, so readers sum only the rows in use. Every other row belongs to
one worker process (one writer); a column to one server (the control process assigns
columns). A worker's ``SharedLoad`` keeps its own count in the process and mirrors each change
into its cell; reading the other rows gives the servers' load across the whole balancer.

Invariants:
- A cell is written by one process only (the row's worker; the control process zeroes a
  row when its worker has exited, before the row is given to another worker).
- An aligned 8-byte store is atomic on the platforms steelyard runs on: a reader sees the old
  or the new count, never a torn one. Sums are a moment's view, like any load reading.
- A column is reused only after its server left every published set and its count across
  all rows fell to zero, while a single generation of workers runs (an older one may still
  serve the server), and the longest-free column goes first.
- ``HIGH`` covers every row in use: raised before a worker gets a row, lowered only after a
  row given back was zeroed.
"""

from __future__ import annotations

import mmap
import os
from collections import deque

from ..core.model import ServerLoad

ROWS = 65  # the cluster row + 64 worker rows
COLUMNS = 4096  # servers across all pools at once (the last column of row 0 is HIGH)
HIGH = COLUMNS - 1
CELL = 8


class SlotTable:
    """The counter block; ``fd`` is what a worker process inherits to map the same memory."""

    def __init__(self, fd: int | None = None) -> None:
        size = ROWS * COLUMNS * CELL
        if fd is None:
            fd = os.memfd_create("steelyard-load", 0)
            os.ftruncate(fd, size)
        self.fd = fd
        self.map = mmap.mmap(fd, size)
        self.cells = memoryview(self.map).cast("q")
        self.free_rows = list(range(ROWS - 1, 0, -1))  # (control process only) rows no worker holds
        self.columns: dict[tuple, int] = {}  # (control process only) server key -> column
        self.free_columns = deque(range(HIGH))  # (oldest freed first)

    # -- rows (control process) --------------------------------------------------------

    def take_row(self) -> int:
        if not self.free_rows:
            raise RuntimeError(f"more than {ROWS - 1} worker processes at once")
        row = self.free_rows.pop()
        self.cells[HIGH] = max(self.cells[HIGH], row)
        return row

    def give_back_row(self, row: int) -> None:
        """The worker of ``row`` has exited: its connections are gone, so are its counts."""
        start = row * COLUMNS
        self.cells[start : start + COLUMNS] = memoryview(bytes(COLUMNS * CELL)).cast("q")
        self.free_rows.append(row)
        self.free_rows.sort(reverse=True)  # (lowest first: the rows in use stay few)
        self.cells[HIGH] = max((r for r in range(1, ROWS) if r not in self.free_rows), default=0)

    # -- columns (control process) -----------------------------------------------------

    def column(self, key: tuple) -> int:
        col = self.columns.get(key)
        if col is None:
            if not self.free_columns:
                raise RuntimeError(f"more than {HIGH} servers at once")
            col = self.columns[key] = self.free_columns.popleft()
        return col

    def release_unused(self, in_use: set[tuple]) -> None:
        """Free the columns of servers no longer published whose count is zero everywhere (call
        it only while one generation of workers runs)."""
        for key in [k for k in self.columns if k not in in_use]:
            col = self.columns[key]
            if not self.total(col):
                del self.columns[key]
                self.cells[col] = 0
                self.free_columns.append(col)

    def total(self, col: int) -> int:
        """In flight to column ``col`` through every worker (other balancers' row left out)."""
        return _workers_sum(self.cells, col)

    def close(self) -> None:
        self.cells.release()
        self.map.close()


class SharedLoad(ServerLoad):
    """A worker's load record of one server: ``active`` is this worker's count, mirrored into its
    cell; ``remote`` is every other row's (other workers' and other balancers') sum."""

    __slots__ = ("cells", "mine", "cell", "row", "col")

    def __init__(self, cells: memoryview, row: int, col: int) -> None:
        self.cells = cells
        self.mine = 0
        self.row, self.col = row, col
        self.cell = row * COLUMNS + col
        super().__init__()

    @property  # type: ignore[override]
    def active(self) -> int:
        return self.mine

    @active.setter
    def active(self, value: int) -> None:
        self.mine = value
        self.cells[self.cell] = value

    @property  # type: ignore[override]
    def remote(self) -> int:
        cells, col, row = self.cells, self.col, self.row
        total = cells[col]  # (row 0: other balancers)
        for r in range(1, cells[HIGH] + 1):
            if r != row:
                total += cells[r * COLUMNS + col]
        return total

    @remote.setter
    def remote(self, value: int) -> None:
        pass  # (only the control process writes other balancers' load, into its own row)


class TotalLoad(ServerLoad):
    """The control process's load record of one server: ``active`` is the sum over every worker
    row (read only); ``remote`` (other balancers' load, ``[cluster]``) is written to the
    cluster row so that every worker adds it."""

    __slots__ = ("cells", "col")

    def __init__(self, cells: memoryview, col: int) -> None:
        self.cells = cells
        self.col = col
        super().__init__()

    @property  # type: ignore[override]
    def active(self) -> int:
        return _workers_sum(self.cells, self.col)

    @active.setter
    def active(self, value: int) -> None:
        pass  # (the workers count; the control process serves no traffic)

    @property  # type: ignore[override]
    def remote(self) -> int:
        return self.cells[self.col]

    @remote.setter
    def remote(self, value: int) -> None:
        self.cells[self.col] = value


def _workers_sum(cells: memoryview, col: int) -> int:
    """Column ``col`` summed over the worker rows in use (1 to ``HIGH``)."""
    return sum([cells[r * COLUMNS + col] for r in range(1, cells[HIGH] + 1)])
