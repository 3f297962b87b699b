"""A custom model class in reviewed code: a logistic scorecard (standardised numbers, one-hot categories).

The platform logs only its arrays (`to_arrays`, an .npz of numbers and text) and rebuilds it from them with
`from_arrays`; the class itself is imported from this module, never unpickled (tasks/model_kinds/custom_kind.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class Scorecard:
    def __init__(self, numerical: np.ndarray, mean: np.ndarray, scale: np.ndarray, categorical: np.ndarray,
                 levels: np.ndarray, level_of: np.ndarray, coef: np.ndarray, intercept: float) -> None:
        self.numerical, self.mean, self.scale = [str(n) for n in numerical], mean, scale
        self.categorical, self.levels, self.level_of = [str(c) for c in categorical], levels, level_of
        self.coef, self.intercept = coef, float(intercept)

    @classmethod
    def fit(cls, features: pd.DataFrame, target: pd.Series, categorical: list[str], c: float = 1.0) -> "Scorecard":
        from sklearn.linear_model import LogisticRegression

        numerical = [n for n in features.columns if n not in categorical]
        cats = [n for n in features.columns if n in categorical]
        values = features[numerical].to_numpy(dtype=np.float64)
        mean, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        levels = [sorted(features[n].dropna().astype(str).unique()) for n in cats]
        card = cls(np.array(numerical), mean, np.where(scale > 0, scale, 1.0), np.array(cats),
                   np.array([v for vs in levels for v in vs]), np.array([i for i, vs in enumerate(levels) for _ in vs]),
                   np.zeros(0), 0.0)
        model = LogisticRegression(C=c, max_iter=1000).fit(card.design(features), np.asarray(target))
        card.coef, card.intercept = model.coef_[0], float(model.intercept_[0])
        return card

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised numbers (missing -> the mean) and one column per known level of each category."""
        numbers = (frame[self.numerical].to_numpy(dtype=np.float64) - self.mean) / self.scale
        dummies = [(frame[self.categorical[i]].astype(str).to_numpy() == level)[:, None]
                   for i, level in zip(self.level_of, self.levels)]
        return np.hstack([np.nan_to_num(numbers, nan=0.0), *dummies]).astype(np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        positive = 1.0 / (1.0 + np.exp(-(self.design(frame) @ self.coef + self.intercept)))
        return np.column_stack([1.0 - positive, positive])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"numerical": np.array(self.numerical), "mean": self.mean, "scale": self.scale,
                "categorical": np.array(self.categorical), "levels": np.asarray(self.levels, dtype=str),
                "level_of": np.asarray(self.level_of, dtype=np.int64), "coef": self.coef,
                "intercept": np.array(self.intercept)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "Scorecard":
        return cls(arrays["numerical"], arrays["mean"], arrays["scale"], arrays["categorical"], arrays["levels"],
                   arrays["level_of"], arrays["coef"], float(arrays["intercept"]))
