from __future__ import annotations

import numpy as np
import pytest

from modelops.spec import Bound
from tasks.metrics import compute_metrics, improvement, relative_drop, threshold_failures


def test_classification_metrics_from_probabilities() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = compute_metrics("classification", y, np.array([0.1, 0.2, 0.8, 0.9]))
    inverted = compute_metrics("classification", y, np.array([0.9, 0.8, 0.2, 0.1]))
    assert perfect["roc_auc"] == 1.0 and perfect["accuracy"] == 1.0
    assert inverted["roc_auc"] == 0.0 and inverted["accuracy"] == 0.0


def test_regression_metrics() -> None:
    out = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert out["mae"] == pytest.approx(2 / 3) and out["rmse"] == pytest.approx(np.sqrt(2 / 3))


def test_threshold_failures_cover_floors_ceilings_and_missing_metrics() -> None:
    failures = threshold_failures({"roc_auc": 0.55, "mae": 12.0},
                                  {"roc_auc": Bound(min=0.6), "mae": Bound(max=10), "r2": Bound(min=0.1)})
    assert failures == ["roc_auc 0.5500 is below the floor 0.6", "mae 12.0000 is above the ceiling 10.0",
                        "r2 could not be computed"]
    assert threshold_failures({"roc_auc": 0.7}, {"roc_auc": Bound(min=0.6)}) == []


def test_improvement_and_drop_respect_metric_direction() -> None:
    assert improvement("roc_auc", 0.70, 0.72) == pytest.approx(0.02)
    assert improvement("mae", 10.0, 8.0) == pytest.approx(2.0)
    assert relative_drop("roc_auc", 0.80, 0.72) == pytest.approx(0.1)
    assert relative_drop("mae", 10.0, 12.0) == pytest.approx(0.2)
    assert relative_drop("mae", 10.0, 9.0) < 0
