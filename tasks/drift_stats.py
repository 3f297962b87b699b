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
from scipy import special, stats

from modelops.spec import DriftSpec, Features
from tasks.drift import ColumnDrift, DriftResult, column_drifted, share_verdict, typed_features
from tasks.verdicts import SKIPPED

FAST_METHODS = {"wasserstein", "jensenshannon", "psi", "ks"}
_BINS_ABOVE_UNIQUE = 20  # Evidently bins a numeric column by histogram only above this many distinct values
_FORMAT = 2  # cache files: 1 kept unsorted values and counts in count order; 2 adds sorted values and each std


@dataclass(frozen=True)
class ReferenceStats:
    """A version's reference data, prepared once: per numeric column its finite values sorted and their standard
    deviation (taken in the data's own order, as Evidently does); per categorical column its distinct values
    sorted, with their counts."""

    numerical: dict[str, np.ndarray]
    std: dict[str, float]
    categories: dict[str, pd.Index]
    counts: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: Features) -> "ReferenceStats":
        typed = typed_features(frame, features)
        finite = {c: _finite(typed[c].to_numpy(dtype="float64")) for c in features.numerical}
        categories, counts = {}, {}
        for column in features.categorical:
            keys, counted = np.unique(typed[column].dropna().to_numpy(dtype=object), return_counts=True)
            categories[column], counts[column] = pd.Index(keys, dtype=object), counted.astype("int64")
        return cls({c: np.sort(v) for c, v in finite.items()}, {c: _std(v) for c, v in finite.items()},
                   categories, counts)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"format": np.array(_FORMAT)}
        for column, values in self.numerical.items():
            arrays[f"num:{column}"], arrays[f"std:{column}"] = values, np.array(self.std[column])
        for column, keys in self.categories.items():
            arrays[f"catkeys:{column}"] = keys.to_numpy().astype(str)
            arrays[f"catcounts:{column}"] = self.counts[column]
        partial = path.with_name(f".{path.name}.partial.npz")
        np.savez(partial, **arrays)
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> "ReferenceStats":
        return _load_cached(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _load_cached(path: str, _mtime: int) -> ReferenceStats:
    """Both formats: a format-1 file's values are sorted (and its std taken from them, in their stored order, which
    is the data's) here, once per process and version."""
    numerical, std, categories, counts = {}, {}, {}, {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            kind, _, column = key.partition(":")
            if kind == "num":
                values = data[key]
                std[column] = float(data[f"std:{column}"]) if f"std:{column}" in data.files else _std(values)
                numerical[column] = values if "format" in data.files else np.sort(values)
            elif kind == "catkeys":
                keys, counted = data[key].astype(object), data[f"catcounts:{column}"].astype("int64")
                order = np.argsort(keys)
                categories[column], counts[column] = pd.Index(keys[order], dtype=object), counted[order]
    return ReferenceStats(numerical, std, categories, counts)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _std(values: np.ndarray) -> float:
    return float(np.std(values)) if len(values) else 0.0


def sorted_finite_columns(values: np.ndarray) -> list[np.ndarray]:
    """Each column of a 2-d float array, sorted, without its NaN and infinities: one sort for all columns (sorting
    puts -inf first and +inf, then NaN, last, so each column's finite values are one slice)."""
    ordered = np.sort(values, axis=0)
    below = np.count_nonzero(ordered == -np.inf, axis=0)
    finite = np.count_nonzero(np.isfinite(ordered), axis=0)
    return [ordered[lo:lo + n, i] for i, (lo, n) in enumerate(zip(below.tolist(), finite.tolist()))]


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """scipy's wasserstein_distance of two sorted samples: the mean absolute difference of sorted values when the
    sizes are equal, otherwise the area between the two empirical CDFs."""
    if len(u) == len(v):
        return float(np.mean(np.abs(u - v)))
    both = np.sort(np.concatenate([u, v]), kind="mergesort")
    deltas = np.diff(both)
    u_cdf = np.searchsorted(u, both[:-1], "right") / len(u)
    v_cdf = np.searchsorted(v, both[:-1], "right") / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def category_counts(keys: pd.Index, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of `values` per reference key (a hash lookup in the version's index of keys, built once), and the
    values the reference has not seen with their counts."""
    at = keys.get_indexer(values)
    known = at >= 0
    extra, extra_counts = np.unique(values[~known], return_counts=True)
    return np.bincount(at[known], minlength=len(keys)), extra, extra_counts


def _shares_by_keys(ref_counts: np.ndarray, cur_counts: np.ndarray, extra_counts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's value-count binning: the union of observed values (the reference's, then those only the current
    window has), shares of each side's rows."""
    ref = np.concatenate([ref_counts, np.zeros(len(extra_counts))]) / ref_counts.sum()
    cur = np.concatenate([cur_counts, extra_counts]).astype("float64") / (cur_counts.sum() + extra_counts.sum())
    return ref, cur


def _shares_numeric(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`reference` sorted."""
    if np.count_nonzero(np.diff(reference)) + 1 > _BINS_ABOVE_UNIQUE:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        return (np.histogram(reference, edges)[0] / len(reference), np.histogram(current, edges)[0] / len(current))
    keys, counted = np.unique(reference, return_counts=True)
    return _shares_by_keys(counted, *category_counts(pd.Index(keys), current)[::2])


def _fill_zeroes(shares: np.ndarray) -> np.ndarray:
    # Evidently's PSI replaces empty bins with a tiny share so that the logarithm stays finite.
    smallest = shares[shares != 0].min()
    filler = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, filler, shares)


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    # scipy.spatial.distance.jensenshannon without its argument checks (a few microseconds per column).
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0
    return float(np.sqrt((special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0))


def _score(method: str, ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    if method == "jensenshannon":
        return _jensenshannon(ref_shares, cur_shares)
    ref, cur = _fill_zeroes(ref_shares), _fill_zeroes(cur_shares)
    return float(np.sum((ref - cur) * np.log(ref / cur)))  # psi


def numeric_score(method: str, reference: np.ndarray, std: float, current: np.ndarray) -> float:
    """`reference` and `current` sorted finite values; `std` the reference's."""
    if method == "wasserstein":
        return wasserstein_sorted(reference, current) / max(std, 0.001)
    if method == "ks":
        return float(stats.ks_2samp(reference, current)[1])
    return _score(method, *_shares_numeric(reference, current))


def categorical_score(method: str, ref_counts: np.ndarray, cur_counts: np.ndarray, extra_counts: np.ndarray
                      ) -> float:
    if method not in ("jensenshannon", "psi"):
        raise ValueError(f"{method} is not a categorical method of the fast path")
    return _score(method, *_shares_by_keys(ref_counts, cur_counts, extra_counts))


def supports(policy: DriftSpec) -> bool:
    return policy.num_method in FAST_METHODS and policy.cat_method in ("jensenshannon", "psi")


def numeric_matrix(frame: pd.DataFrame, features: Features) -> np.ndarray:
    """The numeric features as one float64 array (rows x columns), as typed_features types them: plain numpy
    numbers as they are, anything else through pd.to_numeric (what cannot be read is NaN)."""
    if not features.numerical:
        return np.zeros((len(frame), 0))
    dtypes = frame.dtypes[features.numerical]
    if all(isinstance(d, np.dtype) and d.kind in "fiub" for d in dtypes):
        return frame[features.numerical].to_numpy(dtype="float64")
    return typed_features(frame, Features(numerical=features.numerical, categorical=[])).to_numpy(dtype="float64")


def category_values(column: pd.Series) -> np.ndarray:
    """A categorical column's present values as strings, as typed_features types them: a column of strings alone
    is taken as it is (the common case, without a pass over the values per row in Python)."""
    values = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return column[column.notna()].astype(str).to_numpy(dtype=object)


def fast_drift(reference: ReferenceStats, current: pd.DataFrame, features: Features, policy: DriftSpec) -> DriftResult:
    """Per-column scores and verdicts; a column with no values on either side cannot be judged for drift (the
    data-quality check reports it) and is left out of the share."""
    columns, unjudged = [], []
    for column, values in zip(features.numerical, sorted_finite_columns(numeric_matrix(current, features))):
        ref = reference.numerical[column]
        if len(values) == 0 or len(ref) == 0:
            unjudged.append(column)
            continue
        score = numeric_score(policy.num_method, ref, reference.std[column], values)
        columns.append(ColumnDrift(column, policy.num_method, score, policy.num_threshold,
                                   column_drifted(policy.num_method, score, policy.num_threshold)))
    for column in features.categorical:
        values = category_values(current[column])
        if len(values) == 0 or len(reference.categories[column]) == 0:
            unjudged.append(column)
            continue
        counted, _, extra_counts = category_counts(reference.categories[column], values)
        score = categorical_score(policy.cat_method, reference.counts[column], counted, extra_counts)
        columns.append(ColumnDrift(column, policy.cat_method, score, policy.cat_threshold,
                                   column_drifted(policy.cat_method, score, policy.cat_threshold)))
    if not columns:
        return DriftResult(share=0.0, columns=[], verdict=SKIPPED, unjudged=unjudged)
    share = sum(c.drifted for c in columns) / len(columns)
    return DriftResult(share=share, columns=columns, verdict=share_verdict(share, policy), unjudged=unjudged)
