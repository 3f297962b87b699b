"""Model quality metrics and the spec's floors and ceilings."""

from __future__ import annotations

from typing import Literal

import numpy as np

from modelops.spec import HIGHER_IS_BETTER, Bound


def compute_metrics(task: Literal["classification", "regression"], y_true: np.ndarray, scores: np.ndarray,
                    decision_threshold: float = 0.5) -> dict[str, float]:
    """Classification: `scores` are probabilities of the positive class. Regression: predicted values."""
    from sklearn import metrics

    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype="float64")
    if task == "classification":
        labels = (scores >= decision_threshold).astype(int)
        out = {
            "accuracy": metrics.accuracy_score(y_true, labels),
            "f1": metrics.f1_score(y_true, labels, zero_division=0),
            "positive_rate": float(labels.mean()),
        }
        if len(np.unique(y_true)) == 2:
            out["roc_auc"] = metrics.roc_auc_score(y_true, scores)
            out["log_loss"] = metrics.log_loss(y_true, np.clip(scores, 1e-7, 1 - 1e-7))
        return {key: float(value) for key, value in out.items()}
    return {
        "mae": float(metrics.mean_absolute_error(y_true, scores)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, scores))),
        "r2": float(metrics.r2_score(y_true, scores)),
    }


def threshold_failures(values: dict[str, float], thresholds: dict[str, Bound]) -> list[str]:
    """Human-readable reasons for every metric outside its bound (a missing metric fails too)."""
    failures = []
    for name, bound in thresholds.items():
        value = values.get(name)
        if value is None:
            failures.append(f"{name} could not be computed")
            continue
        if bound.min is not None and value < bound.min:
            failures.append(f"{name} {value:.4f} is below the floor {bound.min}")
        if bound.max is not None and value > bound.max:
            failures.append(f"{name} {value:.4f} is above the ceiling {bound.max}")
    return failures


def direction(metric: str) -> str:
    return "higher is better" if metric in HIGHER_IS_BETTER else "lower is better"


def meets_limit(metric: str, value: float, limit: float) -> bool:
    """A limit is a floor for metrics where higher is better and a ceiling for errors and losses."""
    return value >= limit if metric in HIGHER_IS_BETTER else value <= limit


def limit_reason(metric: str, value: float, limit: float, kind: str) -> str:
    """What an approver reads: metric, value, limit and direction, whether it passed or not."""
    floor = metric in HIGHER_IS_BETTER
    if meets_limit(metric, value, limit):
        return f"holdout {metric} {value:.4f} {'>=' if floor else '<='} {limit} ({direction(metric)})"
    return (f"holdout {metric} {value:.4f} is {'below' if floor else 'above'} the {kind} "
            f"{'floor' if floor else 'ceiling'} {limit} ({direction(metric)})")


def improvement(metric: str, champion: float, challenger: float) -> float:
    """How much better the challenger is, signed so that positive always means better."""
    return challenger - champion if metric in HIGHER_IS_BETTER else champion - challenger


def relative_drop(metric: str, reference: float, current: float) -> float:
    """Relative degradation versus a reference value, positive when worse."""
    if reference == 0:
        return 0.0
    return -improvement(metric, reference, current) / abs(reference)
