"""The ONNX converters against scikit-learn itself: the double-precision trees score as the native model does."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from tasks.onnx_export import TOLERANCE, OnnxScorer, convert_sklearn, max_difference

COLUMNS = [("a", "double"), ("b", "double")]


def onnx_scores(estimator: object, frame: pd.DataFrame, columns: list[tuple[str, str]], task: str) -> np.ndarray:
    return OnnxScorer(convert_sklearn(estimator, columns), columns, task).scores(frame)


def test_bike_demand_poisson_regressor_converts_with_equal_predictions() -> None:
    from modelops.spec import load_spec
    from tasks.data import load_window

    spec = load_spec("bike-demand")
    frame = load_window(spec, spec.training.window)
    features = frame[spec.data.features.all]
    estimator = spec.entry("trainer")(features, frame[spec.data.target], dict(spec.training.params))
    columns = [(c, "string" if features[c].dtype == object else "double") for c in features.columns]
    native = estimator.predict(features)
    assert max_difference(native, onnx_scores(estimator, features, columns, "regression")) <= TOLERANCE
    assert native.max() > 100  # counts: the exp link was applied, not the raw score


def test_missing_values_go_where_scikit_learn_sends_them() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    target = (frame["a"] > 0).astype(int)
    frame.loc[frame.index[:300], "a"] = np.nan  # missing rows are mostly negatives: a learnt missing direction
    target[:300] = (rng.random(300) < 0.1).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(frame, target)
    probe = pd.DataFrame({"a": [np.nan, np.nan, 0.5, -0.5], "b": [0.0, np.nan, np.nan, 1.0]})
    expected = estimator.predict_proba(probe)[:, 1]
    assert max_difference(expected, onnx_scores(estimator, probe, COLUMNS, "classification")) <= 1e-12


def test_trees_that_are_a_single_leaf_convert() -> None:
    frame = pd.DataFrame({"a": np.ones(200), "b": np.zeros(200)})  # nothing to split on: every tree is its root
    target = np.random.default_rng(1).normal(size=200)
    estimator = HistGradientBoostingRegressor(max_iter=5).fit(frame, target)
    assert max_difference(estimator.predict(frame), onnx_scores(estimator, frame, COLUMNS, "regression")) <= 1e-12
