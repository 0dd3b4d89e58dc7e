"""Optional parts name their pip extra when the package is missing (steelyard.extras).

Each test hides the package as an uninstalled one would be (``sys.modules[name] = None``
makes ``import name`` raise ImportError) and checks the message a user would see."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from steelyard.cli import main
from steelyard.config import parse_config
from steelyard.config.warnings import config_warnings
from steelyard.extras import MissingExtra, available, require
from steelyard.sessions import open_store


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_installed_extras_are_available() -> None:
    assert available("redis") and available("plots")  # the test install has [all]
    require("redis", "anything")


def test_require_names_the_feature_and_the_pip_extra(no_redis: None) -> None:
    with pytest.raises(MissingExtra) as info:
        require("redis", "[cluster]")
    assert str(info.value) == (
        "[cluster] needs the 'redis' package, which is not installed; install it with: pip install 'steelyard[redis]'"
    )


def test_register_without_redis_is_a_one_line_error(no_redis: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["register", "--redis", "redis://127.0.0.1:1/0", "--pool", "app", "--address", "127.0.0.1:9001"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        "steelyard: steelyard register needs the 'redis' package, which is not installed; "
        "install it with: pip install 'steelyard[redis]'\n"
    )


def test_redis_session_store_without_redis(no_redis: None) -> None:
    with pytest.raises(MissingExtra, match=r"the Redis session store .* .steelyard\[redis\]."):
        open_store("redis://127.0.0.1:1/0")
    assert open_store("memory") is not None  # the core stores need nothing extra


def test_check_warns_when_cluster_cannot_run_here(no_redis: None) -> None:
    config = parse_config(
        '[[listener]]\nname = "w"\nbind = "127.0.0.1:0"\npool = "p"\n\n'
        '[[pool]]\nname = "p"\nservers = [ { address = "127.0.0.1:9001" } ]\n\n'
        '[cluster]\nredis = "redis://127.0.0.1:6379/0"\nnode = "lb1"\n'
    )
    assert config_warnings(config) == [
        (
            "cluster",
            "[cluster] needs the 'redis' package, which is not installed; "
            "install it with: pip install 'steelyard[redis]'",
        )
    ]


def test_serve_with_cluster_but_no_redis_refuses_to_start(
    no_redis: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[listener]]\nname = "w"\nbind = "127.0.0.1:0"\npool = "p"\n\n'
        '[[pool]]\nname = "p"\nservers = [ { address = "127.0.0.1:9001" } ]\n\n'
        '[cluster]\nredis = "redis://127.0.0.1:6379/0"\nnode = "lb1"\n'
    )
    assert main(["serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "steelyard: cannot start: [cluster] needs the 'redis' package" in err
    assert "pip install 'steelyard[redis]'" in err


def test_simulate_without_matplotlib_prints_the_table_and_names_the_extra(
    no_matplotlib: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plots"
    code = main(["simulate", "--scenario", "supermarket", "--requests", "2000", "--warmup", "200", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "p2c" in captured.out
    assert "pip install 'steelyard[plots]'" in captured.err and "--no-plot" in captured.err
    assert not out.exists()


def test_core_dependencies_leave_out_the_extras() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    assert not any(name in core for name in ("matplotlib", "redis", "hiredis"))
    extras = project["optional-dependencies"]
    assert any(d.startswith("matplotlib") for d in extras["plots"])
    assert {d.split(">")[0] for d in extras["redis"]} == {"redis", "hiredis"}
    assert extras["all"] == ["steelyard[redis,plots]"]
    assert isinstance(project["license"], str)  # an SPDX expression (a table is deprecated)


def test_serving_imports_nothing_from_the_extras() -> None:
    import subprocess

    code = (
        "import sys; sys.modules['redis'] = sys.modules['matplotlib'] = None\n"
        "import steelyard.cli, steelyard.control.runtime, steelyard.control.admin, steelyard.workers.master\n"
        "import steelyard.dns.server, steelyard.proxy.tcp, steelyard.proxy.udp, steelyard.sessions\n"
        "steelyard.cli.main(['check', '--config', 'examples/basic.toml'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "configuration is valid" in done.stdout
