"""XGBoost in its own formats (JSON or UBJSON), loaded by xgboost's `Booster.load_model` from the scanned bytes.

Both formats are data: a document of trees and parameters that xgboost parses and checks, with no way to name
Python code. The legacy binary format (`model_format: xgb`, deprecated by xgboost since 2.1 and parsed by older,
less checked code) and anything pickled are refused: re-save the booster as JSON or UBJ.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from tasks.model_kinds.base import (
    Described, Predictor, ScanContext, ScanResult, as_categories, probabilities, pyfunc_findings, read_model_file,
    scan_result,
)

FORMATS = {"json", "ubj"}
# The classes MLflow's own loader would import for the flavor (model_class); the platform only builds a Booster.
MODEL_CLASSES = {"xgboost.core.Booster", "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor"}


def _content_finding(fmt: str, data: bytes) -> str | None:
    """Whether the bytes are what the format says: a JSON document with a learner, or a UBJSON object."""
    if data[:1] == b"\x80":
        return "the model file is a pickle, which runs arbitrary code on load; save the booster as JSON or UBJ"
    if fmt == "json":
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"the model file is not an XGBoost JSON model ({type(exc).__name__}: {exc})"
        if not isinstance(document, dict) or "learner" not in document:
            return "the model file is JSON but not an XGBoost model (no 'learner')"
        return None
    if data[:1] != b"{":
        return "the model file is not an XGBoost UBJSON model (it does not start with an object)"
    return None


def scan(described: Described, context: ScanContext) -> ScanResult:
    flavor = described.flavors["xgboost"]
    fmt = str(flavor.get("model_format", "xgb"))
    findings = pyfunc_findings(described.flavors, "xgboost", "mlflow.xgboost")
    if fmt not in FORMATS:
        findings.append(f"XGBoost model_format {fmt!r} is refused: only 'json' and 'ubj' are loaded (the legacy "
                        "binary format is deprecated); log it with mlflow.xgboost.log_model(model_format='json')")
    if flavor.get("model_class") not in MODEL_CLASSES:
        findings.append(f"XGBoost model_class {flavor.get('model_class')!r} is not one of {sorted(MODEL_CLASSES)}: "
                        "MLflow's loader would import it")
    read = read_model_file(described.folder, flavor.get("data", "model.xgb"))
    if not isinstance(read, str) and fmt in FORMATS:
        finding = _content_finding(fmt, read[1])
        findings += [finding] if finding else []
    return scan_result("xgboost", fmt, findings, described, read)


class XGBoostModel:
    """A booster behind the platform's predict: class probabilities for a classifier, values for a regressor."""

    def __init__(self, booster: Any) -> None:
        import xgboost

        self.estimator = booster
        self._matrix = xgboost.DMatrix
        config = json.loads(booster.save_config())
        self.objective = str(config["learner"]["objective"]["name"])
        self.features = booster.feature_names

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        columns = frame[self.features] if self.features else frame
        output = self.estimator.predict(self._matrix(as_categories(columns), enable_categorical=True))
        if self.objective.startswith("binary:"):
            return probabilities(output)
        return np.asarray(output)


def load(data: bytes, scan: ScanResult) -> Predictor:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    booster.set_param({"nthread": 1})
    return XGBoostModel(booster)


def wrap(trained: Any) -> Predictor:
    import xgboost

    if isinstance(trained, (xgboost.XGBClassifier, xgboost.XGBRegressor)):
        trained = trained.get_booster()
    if not isinstance(trained, xgboost.Booster):
        raise TypeError(f"{type(trained).__name__} is not an xgboost Booster, XGBClassifier or XGBRegressor")
    return XGBoostModel(trained)


def log(trained: Any, signature: Any, pip_requirements: list[str], model_class: str | None = None) -> Any:
    import mlflow.xgboost

    return mlflow.xgboost.log_model(trained, name="model", model_format="ubj", signature=signature,
                                    pip_requirements=pip_requirements)
