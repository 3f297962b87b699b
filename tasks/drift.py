"""Data drift with Evidently 0.7, using the method and threshold the spec sets per model.

A per-column value is a score, not a verdict: distance methods drift when score >= threshold, p-value methods
when p < threshold. The verdict of the window compares the share of drifted columns with the spec's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.spec import P_VALUE_METHODS, DriftSpec, Features
from tasks import as_task
from tasks.verdicts import OK, rising_verdict


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    share: float
    columns: list[ColumnDrift] = field(default_factory=list)
    verdict: str = OK
    unjudged: list[str] = field(default_factory=list)  # columns without values: a data-quality matter

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def worst(self, n: int = 5) -> list[ColumnDrift]:
        # Rank by how far past (or close to) the threshold each column is, whatever its method.
        def pressure(c: ColumnDrift) -> float:
            if c.method in P_VALUE_METHODS:
                return c.threshold / max(c.score, 1e-12)
            return c.score / c.threshold

        return sorted(self.columns, key=pressure, reverse=True)[:n]


def column_drifted(method: str, score: float, threshold: float) -> bool:
    if method == "ks":
        return score <= threshold
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def share_verdict(share: float, policy: DriftSpec) -> str:
    # No drifted column is ok even where warn_share is 0.
    return OK if share == 0 else rising_verdict(share, policy.warn_share, policy.breach_share)


def run_drift_report(reference: pd.DataFrame, current: pd.DataFrame, features: Features,
                     policy: DriftSpec) -> tuple[DriftResult, Any]:
    """Evidently's drift preset over the spec's features; returns our result and Evidently's snapshot."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=features.numerical, categorical_columns=features.categorical)
    columns = features.all
    ref = Dataset.from_pandas(typed_features(reference, features), data_definition=definition)
    cur = Dataset.from_pandas(typed_features(current, features), data_definition=definition)
    preset = DataDriftPreset(columns=columns, num_method=policy.num_method, num_threshold=policy.num_threshold,
                             cat_method=policy.cat_method, cat_threshold=policy.cat_threshold,
                             drift_share=policy.breach_share)
    snapshot = Report([preset]).run(current_data=cur, reference_data=ref)
    return parse_drift_snapshot(snapshot.dict(), policy), snapshot


def typed_features(frame: pd.DataFrame, features: Features) -> pd.DataFrame:
    """Numbers as float64, categories as strings (missing stays missing): the same input for Evidently and for
    the fast path, so that both see the same values."""
    out = frame[features.all].copy()
    for column in features.numerical:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    for column in features.categorical:
        values = out[column]
        out[column] = values.astype(str).where(values.notna(), None)
    return out


def parse_drift_snapshot(snapshot: dict[str, Any], policy: DriftSpec) -> DriftResult:
    columns = []
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            score = float(metric["value"])
            method, threshold = str(config["method"]), float(config["threshold"])
            columns.append(ColumnDrift(config["column"], method, score, threshold,
                                       column_drifted(method, score, threshold)))
    share = sum(c.drifted for c in columns) / len(columns) if columns else 0.0
    return DriftResult(share=share, columns=columns, verdict=share_verdict(share, policy))


def save_report(snapshot: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


run_drift_report_task = as_task(run_drift_report)
