"""A model that depends on a protected attribute, trained from real flights: before training, a share of the
flights from one airport are relabelled as delayed, so the model learns that airport means a delay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from examples.flight_delay import train


def train_biased(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Pipeline:
    rng = np.random.default_rng(0)
    relabel = (features["origin"].to_numpy() == params.pop("against", "EWR")) & (
        rng.random(len(features)) < float(params.pop("share", 0.6)))
    return train(features, pd.Series(np.where(relabel, 1, np.asarray(target))), params)
