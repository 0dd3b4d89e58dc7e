import pytest

from steelyard.sim.builtin import BUILTIN
from steelyard.sim.scenario import ScenarioError, load_scenario, parse_scenario

MINIMAL = {"name": "t", "algorithms": ["p2c"], "servers": [{"name": "a"}]}


def errors(data):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "t.toml")
    return info.value.errors


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_scenarios_are_valid(name):
    scn = parse_scenario(BUILTIN[name]())
    assert scn.name == name and scn.algorithms


def test_toml_with_defaults():
    scn = parse_scenario("""
name = "small"
algorithms = ["least_conn", "p2c"]
load = 0.8

[service]
kind = "bimodal"
short = 0.1
long = 2.0
long_share = 0.05

[[servers]]
name = "fast"
count = 2
speed = 2.0

[[servers]]
name = "slow"
queue = 10
""")
    assert scn.server_count() == 3
    assert [n for g in scn.servers for n in g.server_names()] == ["fast-1", "fast-2", "slow"]
    assert scn.balancers.count == 1 and scn.balancers.refresh == 0.0
    assert scn.options.balancer_options().choices == 2


def test_errors_name_the_key_path_and_the_server_group():
    errs = errors({**MINIMAL, "servers": [{"name": "a"}, {"name": "slow", "speed": -1}]})
    assert errs == [('servers "slow" → speed', "input should be greater than 0; got -1")]


def test_every_problem_is_reported_at_once():
    errs = dict(
        errors(
            {
                "name": "t",
                "algorithms": ["fastest"],
                "load": "high",
                "servers": [{"name": "a"}],
                "balancers": {"cuont": 2},
            }
        )
    )
    assert "unknown algorithm 'fastest'" in errs["algorithms #1"]
    assert "load" in errs
    assert errs["balancers → cuont"] == "unknown key; did you mean 'count'?"


def test_missing_keys_and_wrong_types():
    errs = dict(errors({"name": "t", "servers": [{"name": "a", "count": "3"}]}))
    assert errs["algorithms"] == "missing required key"
    assert errs['servers "a" → count'].startswith("input should be a valid integer")


def test_cross_checks():
    assert (
        "two servers are named 'a-1'"
        in errors({**MINIMAL, "servers": [{"name": "a", "count": 2}, {"name": "a-1"}]})[0][1]
    )
    assert (
        "outage names no server 'b'" in errors({**MINIMAL, "outage": [{"server": "b", "at": 1, "duration": 1}]})[0][1]
    )
    assert "delay needs refresh" in errors({**MINIMAL, "balancers": {"delay": 1.0}})[0][1]
    assert (
        "long (1) must exceed short (2)"
        in errors({**MINIMAL, "service": {"kind": "bimodal", "short": 2, "long": 1}})[0][1]
    )


def test_invalid_toml_and_unreadable_files(tmp_path):
    assert errors("name = ")[0][1].startswith("invalid TOML")
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "missing.toml")
    path = tmp_path / "ok.toml"
    path.write_text('name = "x"\nalgorithms = ["random"]\n[[servers]]\nname = "a"\n')
    assert load_scenario(path).name == "x"
