"""Drift scores without Evidently's report machinery, for sweeps over many models.

Evidently's drift report costs about a second per model whatever the data size; the statistics themselves take
milliseconds. This module computes the same statistics the same way (Evidently 0.7's legacy stattests: the same
cleaning, binning and comparison rules), from reference statistics prepared once per version. A test checks that
the verdicts equal Evidently's on real data; methods not implemented here fall back to Evidently.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from modelops.spec import DriftSpec, Features
from tasks.drift import ColumnDrift, DriftResult, column_drifted, share_verdict, typed_features
from tasks.verdicts import SKIPPED

FAST_METHODS = {"wasserstein", "jensenshannon", "psi", "ks"}
_BINS_ABOVE_UNIQUE = 20  # Evidently bins a numeric column by histogram only above this many distinct values


@dataclass(frozen=True)
class ReferenceStats:
    """A version's reference data, cleaned once: finite numbers per numeric column, counts per category."""

    numerical: dict[str, np.ndarray]
    categorical: dict[str, pd.Series]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: Features) -> "ReferenceStats":
        typed = typed_features(frame, features)
        numerical = {c: _finite(typed[c].to_numpy(dtype="float64")) for c in features.numerical}
        categorical = {c: typed[c].dropna().value_counts() for c in features.categorical}
        return cls(numerical, categorical)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"num:{c}": v for c, v in self.numerical.items()}
        for column, counts in self.categorical.items():
            arrays[f"catkeys:{column}"] = counts.index.to_numpy(dtype=str)
            arrays[f"catcounts:{column}"] = counts.to_numpy(dtype="int64")
        partial = path.with_name(f".{path.name}.partial.npz")
        np.savez(partial, **arrays)
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> "ReferenceStats":
        return _load_cached(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _load_cached(path: str, _mtime: int) -> ReferenceStats:
    with np.load(path, allow_pickle=False) as data:
        numerical = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("num:")}
        categorical = {k.split(":", 1)[1]: pd.Series(data[f"catcounts:{k.split(':', 1)[1]}"],
                                                     index=data[k].astype(object))
                       for k in data.files if k.startswith("catkeys:")}
    return ReferenceStats(numerical, categorical)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _shares_by_value(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's value-count binning: the union of observed values, shares of each side's rows."""
    keys = reference.index.union(current.index)
    ref = reference.reindex(keys, fill_value=0).to_numpy(dtype="float64") / reference.sum()
    cur = current.reindex(keys, fill_value=0).to_numpy(dtype="float64") / current.sum()
    return ref, cur


def _shares_numeric(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(np.unique(reference)) > _BINS_ABOVE_UNIQUE:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        return (np.histogram(reference, edges)[0] / len(reference), np.histogram(current, edges)[0] / len(current))
    return _shares_by_value(pd.Series(reference).value_counts(), pd.Series(current).value_counts())


def _fill_zeroes(shares: np.ndarray) -> np.ndarray:
    # Evidently's PSI replaces empty bins with a tiny share so that the logarithm stays finite.
    smallest = shares[shares != 0].min()
    filler = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, filler, shares)


def _score(method: str, ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    if method == "jensenshannon":
        return float(distance.jensenshannon(ref_shares, cur_shares))
    ref, cur = _fill_zeroes(ref_shares), _fill_zeroes(cur_shares)
    return float(np.sum((ref - cur) * np.log(ref / cur)))  # psi


def numeric_score(method: str, reference: np.ndarray, current: np.ndarray) -> float:
    if method == "wasserstein":
        return float(stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001))
    if method == "ks":
        return float(stats.ks_2samp(reference, current)[1])
    return _score(method, *_shares_numeric(reference, current))


def categorical_score(method: str, reference: pd.Series, current: pd.Series) -> float:
    if method not in ("jensenshannon", "psi"):
        raise ValueError(f"{method} is not a categorical method of the fast path")
    return _score(method, *_shares_by_value(reference, current))


def supports(policy: DriftSpec) -> bool:
    return policy.num_method in FAST_METHODS and policy.cat_method in ("jensenshannon", "psi")


def fast_drift(reference: ReferenceStats, current: pd.DataFrame, features: Features, policy: DriftSpec) -> DriftResult:
    """Per-column scores and verdicts; a column with no values on either side cannot be judged for drift (the
    data-quality check reports it) and is left out of the share."""
    typed = typed_features(current, features)
    columns, unjudged = [], []
    for column in features.numerical:
        values = _finite(typed[column].to_numpy(dtype="float64"))
        ref = reference.numerical[column]
        if len(values) == 0 or len(ref) == 0:
            unjudged.append(column)
            continue
        score = numeric_score(policy.num_method, ref, values)
        columns.append(ColumnDrift(column, policy.num_method, score, policy.num_threshold,
                                   column_drifted(policy.num_method, score, policy.num_threshold)))
    for column in features.categorical:
        counts = typed[column].dropna().value_counts()
        if counts.empty or reference.categorical[column].empty:
            unjudged.append(column)
            continue
        score = categorical_score(policy.cat_method, reference.categorical[column], counts)
        columns.append(ColumnDrift(column, policy.cat_method, score, policy.cat_threshold,
                                   column_drifted(policy.cat_method, score, policy.cat_threshold)))
    if not columns:
        return DriftResult(share=0.0, columns=[], verdict=SKIPPED, unjudged=unjudged)
    share = sum(c.drifted for c in columns) / len(columns)
    return DriftResult(share=share, columns=columns, verdict=share_verdict(share, policy), unjudged=unjudged)
