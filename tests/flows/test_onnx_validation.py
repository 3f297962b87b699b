"""ONNX at validation is optional: a model the converters cannot write still validates, and the store says why it
scores natively. (The flight-delay model that does convert is covered with the gateway, tests/serving.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.semi_supervised import SelfTrainingClassifier

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
MODEL = "flight-delay"


def test_a_model_that_does_not_convert_is_recorded_as_native_and_still_validates(state_home: Path) -> None:
    from flows.register import register
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.data import load_window

    platform = get_platform()
    spec = load_spec(MODEL)
    frame = load_window(spec, spec.training.window)
    # A real model (every row labelled, the wrapper leaves the trees as they are) of a class skl2onnx has no
    # converter for.
    features = frame[spec.data.features.numerical]
    estimator = SelfTrainingClassifier(HistGradientBoostingClassifier(max_iter=50, random_state=0)).fit(
        features, frame[spec.data.target])
    _, model_uri = platform.catalog.log_sklearn_model(
        MODEL, estimator, input_example=features.head(3), predict_fn="predict_proba", params={}, metrics={},
        run_tags={}, pip_requirements=["scikit-learn"])
    version = register(model=MODEL, model_uri=model_uri).version

    verdict = validate(model=MODEL, version=version)

    assert verdict.passed, verdict.failures
    record = platform.store.newest_record(MODEL, version, "validate", "run-gates")
    assert record is not None and record.outcome == "passed"
    onnx = record.evidence["onnx"]
    assert onnx["converted"] is False and onnx["sha256"] is None
    assert onnx["reason"].startswith("conversion failed"), onnx
    report = platform.catalog.load_artifact_dict(record.evidence["validation_run_id"], "validation/report.json")
    assert report["onnx"] == onnx
    artifacts = [a.path for a in platform.catalog.client.list_artifacts(record.evidence["validation_run_id"])]
    assert "onnx" not in artifacts and "validation" in artifacts
