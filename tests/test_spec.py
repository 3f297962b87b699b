from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelops.errors import SpecError
from modelops.spec import load_all_specs, parse_spec, resolve_entry_point

ROOT = Path(__file__).resolve().parents[1]


def write_spec(tmp_path: Path, name: str, mutate) -> Path:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load((ROOT / "configs/models/flight-delay.yaml").read_text())
    mutate(raw)
    path = tmp_path / "models" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_specs_load_and_their_entry_points_resolve() -> None:
    specs = {spec.name: spec for spec in load_all_specs(ROOT / "configs")}
    assert set(specs) == {"flight-delay", "bike-demand", "flight-delay-lgbm", "bike-demand-xgb"}
    assert specs["flight-delay"].task == "classification" and specs["bike-demand"].task == "regression"
    assert (specs["flight-delay-lgbm"].training.kind, specs["bike-demand-xgb"].training.kind) == ("lightgbm", "xgboost")
    for spec in specs.values():
        assert callable(spec.entry("loader")) and callable(spec.entry("trainer"))


@pytest.mark.parametrize("mutate, field, reason", [
    (lambda r: r["monitoring"]["drift"].update(num_threshold=-1), "monitoring.drift.num_threshold", "greater than 0"),
    (lambda r: r.update(risk_tier="extreme"), "risk_tier", "'low', 'medium' or 'high'"),
    (lambda r: r.update(retention="forever"), "retention", "Extra inputs are not permitted"),
    (lambda r: r["training"].update(entry_point="not a path"), "training", "write it as 'package.module:function'"),
    (lambda r: r["training"]["window"].update(end="2012-01-01"), "training.window", "must be after start"),
    (lambda r: r["training"].update(kind="pickle"), "training.kind", "'sklearn', 'xgboost', 'lightgbm', 'onnx', 'custom' or 'endpoint'"),
    (lambda r: r["training"].update(kind="custom"), "training", "give it exactly when training.kind is 'custom'"),
    (lambda r: r["training"].update(model_class="examples.scorecard:Scorecard"), "training",
     "give it exactly when training.kind is 'custom'"),
    (lambda r: r["monitoring"]["drift"].update(warn_share=0.9), "monitoring.drift", "warn_share must not exceed"),
    (lambda r: r["monitoring"]["drift"].update(num_method="vibes"), "monitoring.drift.num_method", "unknown drift method"),
    (lambda r: r.pop("owner"), "owner", "Field required"),
    (lambda r: r["validation"].update(security={"trusted_module_prefixes": ["sklearn."]}), "validation.security",
     "trusted_module_prefixes is no longer supported"),
    (lambda r: r["validation"].update(security={"trusted_types": ["numpy."]}), "validation.security.trusted_types.0",
     "should match pattern"),
])
def test_a_broken_spec_names_path_field_and_reason(tmp_path: Path, mutate, field: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, "flight-delay", mutate)
    with pytest.raises(SpecError) as raised:
        parse_spec(path)
    message = str(raised.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert reason in message


def test_invalid_yaml_and_name_mismatch_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_spec(bad)
    renamed = write_spec(tmp_path, "other-name", lambda r: None)
    with pytest.raises(SpecError, match="differs from the file name"):
        parse_spec(renamed)
    with pytest.raises(SpecError, match="no such life cycle spec"):
        parse_spec(tmp_path / "missing.yaml")


def test_an_entry_point_that_does_not_import_says_how_to_fix_it() -> None:
    with pytest.raises(SpecError, match="cannot import 'no_such_module'"):
        resolve_entry_point("no_such_module:train")
    with pytest.raises(SpecError, match="has no callable 'nope'"):
        resolve_entry_point("examples.flight_delay:nope")
