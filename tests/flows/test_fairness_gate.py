"""Fairness limits on protected attributes are a validation gate (fairlearn)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops.spec import FairnessSpec
from tasks.validation import fairness_gap

ROOT = Path(__file__).resolve().parents[2]


def test_fairness_gap_measures_the_difference_between_groups() -> None:
    y_true = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    group = pd.Series(["a"] * 4 + ["b"] * 4)
    equal = fairness_gap(FairnessSpec(), y_true, np.array([0, 1, 0, 1, 0, 1, 0, 1]), group)
    skewed = fairness_gap(FairnessSpec(), y_true, np.array([1, 1, 1, 1, 0, 0, 0, 0]), group)
    assert equal == 0.0 and skewed == 1.0


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_a_model_over_the_fairness_limit_fails_validation_and_is_rejected(
        state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.approve import approve
    from flows.register import register
    from flows.validate import validate

    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / "flight-delay.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["data"]["protected_attributes"] = ["origin"]
    raw["validation"]["fairness"] = {"metric": "demographic_parity_difference", "max_difference": 0.001}
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))

    version = register(model="flight-delay").version
    verdict = validate(model="flight-delay", version=version)
    assert not verdict.passed
    assert any(f.startswith("fairness: demographic_parity_difference on origin") for f in verdict.failures)
    assert approve(model="flight-delay", version=version).status == "rejected"
