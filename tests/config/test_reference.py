"""docs/configuration.md is generated from the models (steelyard.config.reference) and must
match what the generator prints now; every key has a description, a type and a default."""

from __future__ import annotations

import re
from pathlib import Path

from steelyard.config import Config
from steelyard.config.reference import _tables, descriptions, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_what_the_models_say() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run `python -m steelyard.config.reference > docs/configuration.md`"
    )


def test_every_key_of_every_table_is_described() -> None:
    text = render()
    for path, model, _, _ in _tables(Config, "", False, ""):
        for name, field in model.model_fields.items():
            what = descriptions(model).get(name, "")
            assert len(what) > 10, f"{path or 'top level'}: {name} has no description"
            key = field.alias or name
            assert re.search(rf"^\| `{re.escape(key)}` \| \S", text, re.MULTILINE), key


def test_types_units_and_defaults_are_rendered() -> None:
    text = render()
    assert '| `connect_timeout` | duration | `"2s"` |' in text
    assert "| `max_body_size` | size | none |" in text
    assert '| `mode` | `"http"` \\| `"tcp"` \\| `"udp"` | `"http"` |' in text
    assert "| `weight` | integer (≥ 0, ≤ 1000) | `1` |" in text
    assert "| `servers` | array of tables | **required** |" in text
    assert "*Only for mode tcp.*" in text  # keys that only some listener modes take say so
    assert "## [[listener.tls.certificate]]" in text and "## [pool.health]" in text
