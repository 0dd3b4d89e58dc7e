"""Every configuration shown to users is checked, so none can rot: each examples/*.toml file
through `steelyard check`, and each TOML block of README.md and docs/*.md.

A block is marked by its fence's info string:
- "```toml": a complete configuration file;
- "```toml fragment": some tables or keys, merged into a minimal base (one listener "web" in
  front of pool "app"; tables like ``[pool.sticky]`` go to that pool; pools a fragment refers to
  but does not define are added with one server);
- "```toml scenario": a simulator scenario (docs/algorithms.md), checked by its own parser.
Certificate files a block names are replaced by placeholders when they do not exist here. A
checked configuration must also draw no warning (a key that would do nothing)."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from steelyard.cli import main
from steelyard.config import parse_config
from steelyard.config.summary import describe
from steelyard.config.warnings import config_warnings
from steelyard.sim.scenario import parse_scenario

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"^```toml([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BASE = {
    "listener": [{"name": "web", "bind": "127.0.0.1:0", "pool": "app"}],
    "pool": [{"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}],
}
FILE_KEYS = ("cert", "key", "tls_ca")
NAMED = ("listener", "pool", "dns")  # arrays of tables whose items merge by name


def blocks() -> list[Any]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            kind = m[1].strip() or "config"
            found.append(pytest.param(kind, m[2], id=f"{doc.relative_to(ROOT)}:{line}"))
    return found


def merge(base: dict, fragment: dict) -> dict:
    """``fragment`` over ``base``: listeners, pools and DNS zones merge by name, a table given where
    the base has an array of tables goes into its first item, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        have = out.get(key)
        if key in NAMED and isinstance(value, list) and isinstance(have, list):
            for item in value:
                same = next((h for h in have if h.get("name") == item.get("name", "dns")), None)
                if same is not None:
                    same.update(merge(same, item))
                else:
                    have.append(copy.deepcopy(item))
        elif isinstance(value, dict) and isinstance(have, list) and have:
            have[0] = merge(have[0], value)
        elif isinstance(value, dict) and isinstance(have, dict):
            out[key] = merge(have, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _pool_refs(data: dict) -> set[str]:
    refs = set()
    for lst in data.get("listener", []):
        refs.add(lst.get("pool"))
        refs |= {r.get("pool") for r in lst.get("route", []) + lst.get("sni", [])}
    for zone in data.get("dns", []):
        refs |= {r.get("pool") for r in zone.get("record", []) if "pool" in r}
    return {r for r in refs if isinstance(r, str)}


def complete(data: dict) -> dict:
    """Add the pools a fragment refers to but does not define."""
    names = {p.get("name") for p in data.get("pool", [])}
    for n, ref in enumerate(sorted(_pool_refs(data) - names)):
        data["pool"].append({"name": ref, "servers": [{"address": f"127.0.0.1:{9101 + n}"}]})
    return data


def placeholders(node: Any, tmp: Path) -> Any:
    """Certificate paths that do not exist here point at placeholder files instead."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FILE_KEYS and isinstance(value, str) and not Path(value).exists():
                stand_in = tmp / Path(value).name
                stand_in.write_text("placeholder: the check only needs the file to exist")
                node[key] = str(stand_in)
            else:
                placeholders(value, tmp)
    elif isinstance(node, list):
        for item in node:
            placeholders(item, tmp)
    return node


def assert_checks(data: dict, where: str) -> None:
    config = parse_config(data, where)  # a ConfigError names every problem
    assert config_warnings(config) == [], where
    assert describe(config)


@pytest.mark.parametrize(("kind", "text"), blocks())
def test_every_toml_block_in_the_docs_checks(
    kind: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tomllib

    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # (the custom algorithm the guide loads)
    assert kind in ("config", "fragment", "scenario"), f"unknown block kind {kind!r}"
    if kind == "scenario":
        parse_scenario(text)
        return
    data = placeholders(tomllib.loads(text), tmp_path)
    if kind == "fragment":
        data = complete(merge(BASE, data))
    assert_checks(data, kind)


def test_the_docs_hold_blocks_of_every_kind() -> None:
    kinds = [p.values[0] for p in blocks()]
    assert kinds.count("fragment") >= 10 and "config" in kinds and "scenario" in kinds


EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where examples/make-cert.sh (the certificate quickstart) has run."""
    where = tmp_path_factory.mktemp("run")
    done = subprocess.run(
        ["sh", str(ROOT / "examples" / "make-cert.sh")], cwd=where, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0 and "openssl" in done.stderr + done.stdout and "not found" in done.stderr:
        pytest.skip("the openssl command line is not installed")
    assert done.returncode == 0, done.stderr
    assert (where / "examples" / "tls" / "localhost.pem").exists()
    return where


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_passes_check_without_warnings(
    path: Path, quickstart_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(quickstart_dir)  # (https.toml names the quickstart's certificate, relative to here)
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: configuration is valid\n" in out
    assert "warning" not in err


def test_the_guide_shows_the_custom_algorithm_example_as_it_is() -> None:
    guide = (ROOT / "docs" / "configuration-guide.md").read_text()
    code = (ROOT / "examples" / "first_healthy.py").read_text()
    assert f"```python\n{code}```" in guide


def test_there_is_an_example_per_use_case() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"basic", "https", "tcp", "udp-dns", "sticky-sessions", "cluster-lb1", "cluster-lb2", "workers"} <= names
    assert {"admin"} <= names
    assert (ROOT / "examples" / "make-cert.sh").exists()


def test_the_architecture_shows_the_filter_example_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    code = (ROOT / "examples" / "api_key_filter.py").read_text()
    assert f"```python\n{code}```" in doc
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    from api_key_filter import RequireApiKey

    from steelyard.filters import Context, Request
    from steelyard.proxy.http.exchange import Exchange

    f = RequireApiKey({"keys": {"k3y": "alice"}})
    ex = Exchange(0.0)
    ex.method, ex.url, ex.parts = b"GET", b"/api/x", [b"X-Api-Key", b": ", b"nope", b"\r\n"]
    ctx = Context.__new__(Context)
    ctx._vars = None
    assert f.request_filter(Request(ex), ctx).status == 403
    ex.parts[2] = b"k3y"
    req = Request(ex)
    assert f.request_filter(req, ctx) is None
    assert list(req.headers) == [("X-Api-Client", "alice")] and ctx.vars == {"owner": "alice"}
