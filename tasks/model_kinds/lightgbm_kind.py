"""LightGBM boosters in LightGBM's own text format, loaded with `Booster(model_str=...)` from the scanned bytes.

The text format is data (trees, parameters, the pandas categories) that LightGBM's parser reads; it cannot name
Python code. The scikit-learn API flavor (an LGBMClassifier saved with skops or pickle) is refused: log the
fitted model's booster (`model.booster_`) instead, which is what is scored anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.model_kinds.base import (
    Described, Predictor, ScanContext, ScanResult, as_categories, probabilities, pyfunc_findings, read_model_file,
    scan_result,
)

BOOSTER = "lightgbm.basic.Booster"
BINARY_OBJECTIVES = ("binary", "cross_entropy", "xentropy")


def scan(described: Described, context: ScanContext) -> ScanResult:
    flavor = described.flavors["lightgbm"]
    findings = pyfunc_findings(described.flavors, "lightgbm", "mlflow.lightgbm")
    if flavor.get("model_class") != BOOSTER:
        findings.append(f"LightGBM model_class {flavor.get('model_class')!r} is refused: only a {BOOSTER} saved in "
                        "LightGBM's text format is loaded (the scikit-learn API flavor is a skops or pickle file); "
                        "log model.booster_ with mlflow.lightgbm.log_model")
    read = read_model_file(described.folder, flavor.get("data", "model.lgb"))
    if not isinstance(read, str) and not findings:
        text = read[1]
        if text[:1] == b"\x80":
            findings.append("the model file is a pickle, which runs arbitrary code on load; log the booster in "
                            "LightGBM's text format")
        elif not text.startswith(b"tree\n"):
            findings.append("the model file is not a LightGBM text model (it does not start with 'tree')")
        else:
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                findings.append("the model file is not a LightGBM text model (not UTF-8 text)")
    return scan_result("lightgbm", "text", findings, described, read)


class LightGBMModel:
    """A booster behind the platform's predict: class probabilities for a classifier, values for a regressor."""

    def __init__(self, booster: Any) -> None:
        self.estimator = booster
        self.features = booster.feature_name()
        self.objective = str(booster.params.get("objective", "")) or _objective_of(booster)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        output = self.estimator.predict(as_categories(frame[self.features]), num_threads=1)
        if self.objective.startswith(BINARY_OBJECTIVES):
            return probabilities(output)
        return np.asarray(output)


def _objective_of(booster: Any) -> str:
    """The objective a loaded booster was trained with: the text model states it on its 'objective=' line."""
    for line in booster.model_to_string(num_iteration=0).splitlines()[:20]:
        if line.startswith("objective="):
            return line.partition("=")[2].split(" ")[0]
    return ""


def load(data: bytes, scan: ScanResult) -> Predictor:
    import lightgbm

    return LightGBMModel(lightgbm.Booster(model_str=data.decode("utf-8")))


def wrap(trained: Any) -> Predictor:
    import lightgbm

    if isinstance(trained, lightgbm.LGBMModel):
        trained = trained.booster_
    if not isinstance(trained, lightgbm.Booster):
        raise TypeError(f"{type(trained).__name__} is not a lightgbm Booster or LGBM model")
    return LightGBMModel(trained)


def log(trained: Any, signature: Any, pip_requirements: list[str], model_class: str | None = None) -> Any:
    import mlflow.lightgbm

    return mlflow.lightgbm.log_model(wrap(trained).estimator, name="model",  # type: ignore[attr-defined]
                                     signature=signature, pip_requirements=pip_requirements)
