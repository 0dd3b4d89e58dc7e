import httpx

from .conftest import simple_config


def test_round_robin_smoke(backends, balancer):
    bs = backends(3)
    lb = balancer(simple_config(bs))
    seen = [httpx.get(lb.url + "/").headers["x-served-by"] for _ in range(6)]
    assert seen == ["s1", "s2", "s3", "s1", "s2", "s3"]
