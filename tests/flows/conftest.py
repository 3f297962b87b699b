"""Fixtures of the flow tests that several files share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KIND_SPECS = {
    "flight-delay-onnx": {"entry_point": "examples.model_kinds:train_flight_delay_onnx", "kind": "onnx",
                          "params": {"max_iter": 50, "random_state": 0}},
    "flight-delay-scorecard": {"entry_point": "examples.model_kinds:train_flight_delay_scorecard", "kind": "custom",
                               "model_class": "examples.scorecard:Scorecard", "params": {}},
}


@pytest.fixture
def kinds_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped configuration plus flight-delay as ONNX and as a custom class (same data, gates and window)."""
    folder = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", folder)
    base = yaml.safe_load((ROOT / "configs" / "models" / "flight-delay.yaml").read_text())
    base.pop("flows")
    for name, training in KIND_SPECS.items():
        spec = {**base, "name": name, "training": {**base["training"], **training}}
        (folder / "models" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(folder))
    return folder
