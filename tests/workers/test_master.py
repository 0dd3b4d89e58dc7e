"""The control process's bookkeeping of worker counters and exits."""

from __future__ import annotations

from steelyard.core.model import LATENCY_BOUNDS
from steelyard.workers.channel import sum_pool_reports
from steelyard.workers.master import _how

W = len(LATENCY_BOUNDS) + 1


def row(requests: int, failures: int = 0, by_class=None, latency=None) -> list:
    return [requests, failures, 0.5 * requests, 100 * requests, 10 * requests, by_class or [0] * 6, latency or [0] * W]


def test_counters_of_every_report_add_up_per_pool_and_server() -> None:
    one = {
        "app": {
            "servers": {"a": row(3, 1, [0, 0, 0, 0, 1, 0], [1] + [0] * (W - 1))},
            "retried": 2,
            "answered": {"502": 1},
        }
    }
    two = {
        "app": {"servers": {"a": row(4), "b": row(5)}, "retried": 1, "answered": {"502": 2, "503": 1}},
        "api": {"servers": {"x": row(1)}},
    }
    total = sum_pool_reports([{}, one, two])
    assert total["app"]["servers"]["a"] == [7, 1, 3.5, 700, 70, [0, 0, 0, 0, 1, 0], [1] + [0] * (W - 1)]
    assert total["app"]["servers"]["b"][0] == 5 and total["api"]["servers"]["x"][0] == 1
    assert total["app"]["retried"] == 3 and total["app"]["answered"] == {"502": 3, "503": 1}


def test_what_exited_workers_counted_is_kept() -> None:
    retired = sum_pool_reports([{"app": {"servers": {"a": row(10)}}}])
    live = {"app": {"servers": {"a": row(2)}}}
    assert sum_pool_reports([retired, live])["app"]["servers"]["a"][0] == 12


def test_exit_reasons_read_like_the_shell_says_them() -> None:
    assert _how(-9) == "was killed by SIGKILL"
    assert _how(0) == "exited with status 0"
    assert _how(3) == "exited with status 3"
    assert _how(-200) == "was killed by signal 200"
