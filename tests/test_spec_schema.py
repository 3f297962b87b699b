"""The spec's JSON Schema and reference page are generated, committed and current; every field is described."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from modelops import spec as spec_module
from modelops.spec_reference import REFERENCE_FILE, SCHEMA_FILE, json_schema, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "configs" / "models").glob("*.yaml"))
MODELS = [c for c in vars(spec_module).values()
          if isinstance(c, type) and issubclass(c, BaseModel) and c.__module__ == spec_module.__name__]


def _as_json(path: Path) -> dict:
    # YAML reads 2013-01-01 as a date; an editor's YAML language server, like JSON, sees the text.
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


def test_the_committed_schema_is_the_generated_one() -> None:
    assert (ROOT / "configs" / SCHEMA_FILE).read_text() == json_schema(), "run `modelops deployments --write`"


def test_the_committed_reference_page_is_the_generated_one() -> None:
    assert (ROOT / REFERENCE_FILE).read_text() == reference_markdown(), "run `modelops deployments --write`"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    assert [name for name, field in model.model_fields.items() if not field.description] == []


def test_the_reference_names_every_nested_field() -> None:
    page = reference_markdown()
    assert "At `validation.fairness`." in page and "| `limits` |" in page
    assert "At `validation.metric_thresholds.<key>`." in page
    assert "| `holdout_days` | int (>= 1, <= 366) | `14` |" in page


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_each_shipped_spec_points_editors_at_the_schema_and_validates_against_it(path: Path) -> None:
    import jsonschema

    assert path.read_text().splitlines()[0] == f"# yaml-language-server: $schema=../{SCHEMA_FILE}"
    jsonschema.validate(_as_json(path), json.loads(json_schema()))


def test_the_schema_flags_a_misspelt_field_as_an_editor_would() -> None:
    import jsonschema

    raw = _as_json(SPEC_FILES[0])
    raw["monitoring"]["crn"] = raw["monitoring"].pop("cron", "0 6 * * *")
    with pytest.raises(jsonschema.ValidationError, match="'crn' was unexpected"):
        jsonschema.validate(raw, json.loads(json_schema()))
