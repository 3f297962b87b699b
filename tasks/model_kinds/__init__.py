"""Model kinds: one interface for every kind of model the platform runs, one small module per kind.

A kind says how a trained object is logged (its MLflow flavor and files), how its folder is scanned (findings, and
the sha256 of the exact bytes judged) and how the scanned bytes become something with the platform's
`predict(frame) -> np.ndarray` (class probabilities for a classifier, values for a regressor). tasks.security
dispatches on the MLmodel's flavor through KIND_OF_FLAVOR; scikit-learn (skops) stays in tasks.security itself.
Nothing here ever unpickles: every kind's files are data that its own library parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tasks.model_kinds import custom_kind, endpoint_kind, lightgbm_kind, onnx_kind, xgboost_kind
from tasks.model_kinds.base import Described, Predictor, ScanContext, ScanResult

SKLEARN = "sklearn"


@dataclass(frozen=True)
class ModelKind:
    name: str  # as the spec's training.kind says it
    flavor: str  # the MLmodel flavor that marks it
    scan: Callable[[Described, ScanContext], ScanResult]
    load: Callable[[bytes, ScanResult], Predictor]  # only ever given bytes whose scan passed
    wrap: Callable[[Any], Predictor]  # a freshly trained object as the platform will score it
    log: Callable[..., Any]  # (trained, signature, pip_requirements[, model_class]) inside an active MLflow run


KINDS: dict[str, ModelKind] = {
    kind.name: kind for kind in (
        ModelKind("xgboost", "xgboost", xgboost_kind.scan, xgboost_kind.load, xgboost_kind.wrap, xgboost_kind.log),
        ModelKind("lightgbm", "lightgbm", lightgbm_kind.scan, lightgbm_kind.load, lightgbm_kind.wrap,
                  lightgbm_kind.log),
        ModelKind("onnx", "onnx", onnx_kind.scan, onnx_kind.load, onnx_kind.wrap, onnx_kind.log),
        ModelKind("custom", custom_kind.FLAVOR, custom_kind.scan, custom_kind.load, custom_kind.wrap,
                  custom_kind.log),
        ModelKind("endpoint", endpoint_kind.FLAVOR, endpoint_kind.scan, endpoint_kind.load, endpoint_kind.wrap,
                  endpoint_kind.log),
    )
}
KIND_OF_FLAVOR: dict[str, ModelKind] = {kind.flavor: kind for kind in KINDS.values()}
KIND_NAMES: tuple[str, ...] = (SKLEARN, *KINDS)


def kind_of(flavors: dict[str, Any]) -> ModelKind | None:
    """The kind an MLmodel's flavors describe, or None (then only the scikit-learn path may read it)."""
    return next((KIND_OF_FLAVOR[name] for name in flavors if name in KIND_OF_FLAVOR), None)


__all__ = ["KINDS", "KIND_NAMES", "ModelKind", "Predictor", "ScanContext", "ScanResult", "SKLEARN", "kind_of"]
