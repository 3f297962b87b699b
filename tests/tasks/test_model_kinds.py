"""Each model kind's scan and safe loader: real MLflow folders load and score as their own library does; crafted
files (pickles with __reduce__, tampered MLmodels, custom-op ONNX, a custom model whose data is a pickle) are
refused with a clear reason and never run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.errors import UnsafeModelError
from modelops.spec import SecuritySpec
from tasks.model_kinds import ScanContext
from tasks.security import load_scanned_model, scan_model_dir
from tests.tasks.kind_dirs import (
    SCORECARD, WritesMarker, custom_op_model, edit_flavors, external_data_model, frame, marker_pickle, save_custom,
    save_lightgbm, save_onnx, save_xgboost,
)

POLICY = SecuritySpec()
CUSTOM = ScanContext(model_class=SCORECARD)


def scanned(path: Path, context: ScanContext = ScanContext()):  # type: ignore[no-untyped-def]
    return scan_model_dir(path, POLICY, context)


# --- what loads ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_xgboost_loads_from_the_scanned_bytes_and_scores_like_xgboost(tmp_path: Path, fmt: str) -> None:
    import xgboost

    path = save_xgboost(tmp_path / "m", fmt)
    scan = scanned(path)
    assert scan.passed and scan.kind == "xgboost" and scan.serialization == fmt
    features, _ = frame(50, seed=1)
    native = xgboost.XGBClassifier()
    native.load_model(str(path / f"model.{fmt}"))
    expected = native.predict_proba(features.astype({"group": "category"}))
    assert np.allclose(load_scanned_model(scan).predict(features), expected)


def test_a_lightgbm_booster_loads_from_its_text_and_scores_like_lightgbm(tmp_path: Path) -> None:
    import lightgbm

    path = save_lightgbm(tmp_path / "m")
    scan = scanned(path)
    assert scan.passed and scan.kind == "lightgbm"
    features, _ = frame(50, seed=1)
    native = lightgbm.Booster(model_file=str(path / "model.lgb"))
    expected = native.predict(features.astype({"group": "category"}))
    assert np.allclose(load_scanned_model(scan).predict(features)[:, 1], expected)


def test_an_onnx_model_runs_in_onnxruntime_like_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime

    path = save_onnx(tmp_path / "m")
    scan = scanned(path)
    assert scan.passed and scan.kind == "onnx"
    features, _ = frame(50, seed=1)
    session = onnxruntime.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    [expected] = session.run(["probabilities"], {"X": features[["x", "y"]].to_numpy(dtype=np.float32)})
    assert np.allclose(load_scanned_model(scan).predict(features[["x", "y"]]), expected)


def test_a_custom_class_is_rebuilt_from_its_arrays_by_the_class_the_spec_names(tmp_path: Path) -> None:
    from examples.scorecard import Scorecard

    path = save_custom(tmp_path / "m")
    scan = scanned(path, CUSTOM)
    assert scan.passed and scan.kind == "custom" and scan.model_class == SCORECARD
    model = load_scanned_model(scan)
    training, target = frame()
    features, _ = frame(50, seed=1)
    assert type(model) is Scorecard
    expected = Scorecard.fit(training, pd.Series(target), categorical=["group"]).predict(features)
    assert np.allclose(model.predict(features), expected)


# --- what is refused ----------------------------------------------------------------------------------------------
def assert_refused(path: Path, reason: str, marker: Path | None = None, context: ScanContext = ScanContext()) -> None:
    scan = scanned(path, context)
    assert not scan.passed and any(reason in finding for finding in scan.findings), scan.findings
    with pytest.raises(UnsafeModelError):
        load_scanned_model(scan)
    assert marker is None or not marker.exists()


def test_the_marker_pickle_really_writes_its_marker(tmp_path: Path) -> None:
    """The crafted payload works: loading it with pickle creates the marker (so its absence elsewhere means
    nothing ran it)."""
    marker = tmp_path / "marker"
    pickle.load(io.BytesIO(marker_pickle(marker)))  # noqa: S301 - proving the payload is live
    assert marker.exists() and isinstance(WritesMarker(marker), WritesMarker)


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_an_xgboost_file_swapped_for_a_pickle_is_refused(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "marker"
    path = save_xgboost(tmp_path / "m", fmt)
    (path / f"model.{fmt}").write_bytes(marker_pickle(marker))
    assert_refused(path, "is a pickle", marker)


def test_the_legacy_xgboost_binary_format_is_refused(tmp_path: Path) -> None:
    path = edit_flavors(save_xgboost(tmp_path / "m"), xgboost={"model_format": "xgb"})
    assert_refused(path, "model_format 'xgb' is refused")


def test_an_xgboost_mlmodel_naming_another_class_is_refused(tmp_path: Path) -> None:
    path = edit_flavors(save_xgboost(tmp_path / "m"), xgboost={"model_class": "os.system"})
    assert_refused(path, "model_class 'os.system'")


def test_a_tampered_mlmodel_pointing_at_a_cloudpickle_loader_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_lightgbm(tmp_path / "m")
    (path / "python_model.pkl").write_bytes(marker_pickle(marker))
    edit_flavors(path, python_function={"loader_module": "mlflow.pyfunc.model", "python_model": "python_model.pkl"})
    assert_refused(path, "loader_module is 'mlflow.pyfunc.model'", marker)


def test_the_lightgbm_scikit_learn_api_flavor_is_refused(tmp_path: Path) -> None:
    assert_refused(save_lightgbm(tmp_path / "m", booster=False), "model_class 'lightgbm.sklearn.LGBMClassifier'")


def test_a_lightgbm_text_file_swapped_for_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_lightgbm(tmp_path / "m")
    (path / "model.lgb").write_bytes(marker_pickle(marker))
    assert_refused(path, "is a pickle", marker)


def test_an_onnx_model_with_a_custom_operator_is_refused(tmp_path: Path) -> None:
    assert_refused(save_onnx(tmp_path / "m", custom_op_model()), "custom operator(s) com.example.evil::RunShell")


def test_an_onnx_model_reading_data_outside_its_folder_is_refused(tmp_path: Path) -> None:
    path = save_onnx(tmp_path / "m", external_data_model("../../../etc/passwd"))
    assert_refused(path, "outside the model folder")


def test_onnx_session_options_in_the_mlmodel_are_refused(tmp_path: Path) -> None:
    path = edit_flavors(save_onnx(tmp_path / "m"), onnx={"onnx_session_options": {"execution_mode": "parallel"}})
    assert_refused(path, "onnx_session_options")


def test_a_custom_model_whose_data_file_is_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_custom(tmp_path / "m")
    (path / "arrays.npz").write_bytes(marker_pickle(marker))
    assert_refused(path, "the data file is a pickle", marker, CUSTOM)


def test_a_custom_model_with_a_pickled_object_array_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_custom(tmp_path / "m")
    buffer = io.BytesIO()
    np.savez(buffer, coef=np.array([WritesMarker(marker)], dtype=object))  # an object array is stored as a pickle
    (path / "arrays.npz").write_bytes(buffer.getvalue())
    assert_refused(path, "object arrays are pickles", marker, CUSTOM)


def test_a_custom_model_naming_another_class_than_the_spec_is_refused(tmp_path: Path) -> None:
    path = save_custom(tmp_path / "m", model_class="os:system")
    assert_refused(path, "not the spec's training.model_class", context=CUSTOM)


def test_a_custom_model_without_a_class_in_the_spec_is_refused(tmp_path: Path) -> None:
    assert_refused(save_custom(tmp_path / "m"), "the spec names no training.model_class")


def test_a_model_file_replaced_after_the_scan_is_not_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = save_xgboost(tmp_path / "m", "json")
    scan = scanned(path)
    (path / "model.json").write_bytes(marker_pickle(marker))
    with pytest.raises(UnsafeModelError, match="changed after the security scan"):
        load_scanned_model(scan)
    assert not marker.exists()
