"""`modelops check` on real bad specs in a temporary config directory: each problem named with file, field, fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from modelops.checks import check_config_dir
from modelops.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "models").mkdir()
    # The shipped approval policies: each test breaks one spec, and only that spec's problem is expected.
    (tmp_path / "approval-policies.yaml").write_text((ROOT / "configs" / "approval-policies.yaml").read_text())
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(tmp_path))
    return tmp_path


def _write_spec(config_dir: Path, shipped: str, change: Callable[[dict[str, Any]], None]) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "models" / f"{shipped}.yaml").read_text())
    change(raw)
    path = config_dir / "models" / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _problems(config_dir: Path) -> list[str]:
    return [str(problem) for _, _, problems in check_config_dir(config_dir) for problem in problems]


def test_the_shipped_specs_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert "ok    flight-delay" in capsys.readouterr().out


def test_a_cron_out_of_range_is_named(config_dir: Path) -> None:
    path = _write_spec(config_dir, "flight-delay", lambda raw: raw["monitoring"].update(cron="61 25 * * *"))
    [problem] = _problems(config_dir)
    assert problem.startswith(f"{path}: monitoring.cron: '61 25 * * *' is not a valid cron expression")
    assert "fix: write five fields" in problem


def test_a_misspelt_metric_is_named_with_the_one_meant(config_dir: Path) -> None:
    path = _write_spec(config_dir, "flight-delay",
                       lambda raw: raw["validation"]["metric_thresholds"].update(roc_aucc={"min": 0.6}))
    [problem] = _problems(config_dir)
    assert problem.startswith(f"{path}: validation.metric_thresholds.roc_aucc: 'roc_aucc' is not a metric the "
                              "platform computes for classification")
    assert "did you mean 'roc_auc'?" in problem


def test_a_wrong_target_column_is_named_with_the_loaders_columns(config_dir: Path) -> None:
    path = _write_spec(config_dir, "flight-delay", lambda raw: raw["data"].update(target="is_delayed"))
    [problem] = _problems(config_dir)
    assert problem.startswith(f"{path}: data.target: column 'is_delayed' is not in what "
                              "examples.flight_delay:load_frame returns")
    assert "did you mean 'delayed'?" in problem


def test_an_override_that_does_not_import_is_named_with_its_stage(config_dir: Path) -> None:
    path = _write_spec(config_dir, "bike-demand", lambda raw: raw.update(flows={"retrain": "flows.models.nowhere:retrain"}))
    [problem] = _problems(config_dir)
    assert problem.startswith(f"{path}: flows.retrain: entry point 'flows.models.nowhere:retrain': cannot import")


def test_a_custom_model_class_that_does_not_import_is_named(config_dir: Path) -> None:
    path = _write_spec(config_dir, "flight-delay", lambda raw: raw["training"].update(
        kind="custom", model_class="examples.nowhere:Scorecard"))
    [problem] = _problems(config_dir)
    assert problem.startswith(f"{path}: training.model_class: entry point 'examples.nowhere:Scorecard': cannot import")


def test_every_problem_of_every_spec_is_reported_and_the_exit_code_is_1(
        config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def two_problems(raw: dict[str, Any]) -> None:
        raw["monitoring"]["cron"] = "61 25 * * *"
        raw["data"]["target"] = "is_delayed"

    _write_spec(config_dir, "flight-delay", two_problems)
    _write_spec(config_dir, "bike-demand", lambda raw: raw["approval"]["min_metrics"].update(r3=0.5))
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "FAIL  flight-delay: 2 problems" in err and "FAIL  bike-demand: 1 problem" in err
    assert "approval.min_metrics.r3" in err and "monitoring.cron" in err and "data.target" in err
