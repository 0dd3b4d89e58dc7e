import random
import sys
from pathlib import Path

import pytest

from steelyard.core.balancing.base import (
    BUILTIN_ALGORITHMS,
    Balancer,
    PickContext,
    resolve_algorithm,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(BUILTIN_ALGORITHMS))
def test_every_builtin_resolves_to_a_class_of_that_name(name, make_servers):
    cls = resolve_algorithm(name)
    assert issubclass(cls, Balancer) and cls.name == name
    assert cls.__doc__ and len(cls.__doc__) > 60  # names the algorithm and its source
    servers = make_servers(1, 2)
    balancer = cls(servers, rng=random.Random(0), clock=lambda: 0.0)
    assert balancer.pick(PickContext("10.0.0.1", "k")) in servers
    assert balancer.pick(PickContext("10.0.0.1", "k"), servers) is None


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        resolve_algorithm("fastest")
    assert "'fastest'" in str(info.value)
    for name in BUILTIN_ALGORITHMS:
        assert name in str(info.value)


@pytest.fixture
def repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "tests" or name.startswith("tests."):
            del sys.modules[name]


def test_a_user_algorithm_loads_by_dotted_path(repo_on_path, make_servers):
    cls = resolve_algorithm("tests.core.balancing.user_algo:FirstServer")
    servers = make_servers(1, 1)
    assert cls.name == "first_server"
    assert cls(servers, rng=random.Random(0), clock=lambda: 0.0).pick(PickContext(), {servers[0]}) is servers[1]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.core.balancing.no_such_module:X", "cannot import"),
        ("tests.core.balancing.user_algo:Missing", "has no class"),
        ("tests.core.balancing.user_algo:NotABalancer", "pick"),
    ],
)
def test_bad_user_paths_raise_value_errors(repo_on_path, path, message):
    with pytest.raises(ValueError, match=message):
        resolve_algorithm(path)
