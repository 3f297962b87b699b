"""bike-demand: how many bikes will be rented in an hour in Washington D.C.?

Data: the hourly Bikeshare table of 2011 as shipped in the `ISLP` package (UCI Bike Sharing data set,
Fanaee-T and Gama, CC BY 4.0), copied to examples/data/ so that installing ISLP (which pulls torch) is not needed.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from examples.windowing import rows_in_window

CATEGORICAL = ["weathersit"]


@lru_cache(maxsize=1)
def _all_hours() -> pd.DataFrame:
    frame = pd.read_csv(Path(__file__).parent / "data" / "bikeshare_2011_hourly.csv")
    frame["hr"] = frame["hr"].astype("int64")
    frame["timestamp"] = pd.Timestamp("2011-01-01") + pd.to_timedelta(frame["day"] - 1, unit="D") \
        + pd.to_timedelta(frame["hr"], unit="h")
    frame["hour_id"] = frame["timestamp"].dt.strftime("%Y%m%d%H").astype("int64")
    for column in ("temp", "atemp", "hum", "windspeed"):
        frame[column] = frame[column].astype("float64")
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def load_frame(start: date, end: date) -> pd.DataFrame:
    """Hours of 2011 in [start, end), with weather, calendar features and the rental count."""
    return rows_in_window(_all_hours(), "timestamp", start, end)


def train(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Pipeline:
    categorical = [c for c in features.columns if c in CATEGORICAL]
    numerical = [c for c in features.columns if c not in CATEGORICAL]
    prepare = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
    )
    model = HistGradientBoostingRegressor(
        loss="poisson",  # counts
        max_iter=int(params.get("max_iter", 300)),
        learning_rate=float(params.get("learning_rate", 0.08)),
        random_state=int(params.get("random_state", 0)),
    )
    pipeline = Pipeline([("prepare", prepare), ("model", model)])
    pipeline.fit(features[numerical + categorical], np.asarray(target, dtype="float64"))
    return pipeline
