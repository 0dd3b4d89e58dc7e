"""``steelyard lab``: real backends, the real proxy and the bounded load generator on 127.0.0.1."""

import pytest

from steelyard.cli import main
from steelyard.demo.compare import LAB_ALGORITHMS, check_algorithms, compare


async def test_each_algorithm_is_driven_through_the_real_proxy():
    results = await compare(
        ["round_robin", "least_conn", "weighted_round_robin"], requests=30, concurrency=3, time_limit=30.0
    )
    by_algo = {r.algorithm: r for r in results}
    assert list(by_algo) == ["round_robin", "least_conn", "weighted_round_robin"]
    for r in results:
        assert r.answered == 30 and r.errors == 0
        assert sum(r.share.values()) == pytest.approx(1.0)
        assert 0 < r.p50 <= r.p99
    assert by_algo["round_robin"].share == pytest.approx({"fast": 1 / 3, "medium": 1 / 3, "slow": 1 / 3})
    assert by_algo["round_robin"].p99 >= 0.08  # the slow backend answers after 80 ms
    lc = by_algo["least_conn"].share
    assert lc["fast"] > lc["slow"]  # the fast backend frees its connection first
    assert by_algo["weighted_round_robin"].share["fast"] == pytest.approx(5 / 7, abs=0.05)


async def test_the_time_limit_bounds_the_run():
    (r,) = await compare(["random"], requests=10_000, concurrency=2, time_limit=0.3)
    assert r.answered < 10_000


def test_algorithm_names_are_checked(capsys):
    assert check_algorithms(None) == list(LAB_ALGORITHMS)
    assert check_algorithms(["p2c", "round_robin"]) == ["round_robin", "p2c"]
    assert main(["lab", "--algorithm", "fastest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steelyard lab: unknown algorithm 'fastest'") and "Traceback" not in err
    assert main(["lab", "--requests", "0"]) == 2


def test_demo_with_an_algorithm_runs_the_comparison(capsys, monkeypatch):
    import steelyard.demo.compare as lab

    seen = {}
    monkeypatch.setattr(lab, "run_lab", lambda algorithms, **kw: seen.update(algorithms=algorithms, **kw))
    assert main(["demo", "--algorithm", "least_conn"]) == 0
    assert seen == {"algorithms": ["least_conn"], "requests": 300, "concurrency": 8, "time_limit": 60.0}
    assert main(["demo", "-a", "fastest"]) == 2
    assert "unknown algorithm 'fastest'" in capsys.readouterr().err
