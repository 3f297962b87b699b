"""Bias of a model across its protected attributes: the gaps between groups (fairlearn) that validation gates and
monitoring judges, each against the spec's limit (validation.fairness).

Classifiers: demographic parity difference and equalized odds difference of the thresholded predictions.
Regressors: mae_gap, the largest minus the smallest group MAE relative to the MAE of all rows. A gap that cannot
be computed (a missing column, fewer than two groups large enough, a group without both labels for equalized odds)
is reported with the reason and a value of None: validation fails it, monitoring does not judge it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelops.spec import FairnessSpec, LifecycleSpec

MISSING_GROUP = "<missing>"


@dataclass(frozen=True)
class BiasMeasure:
    attribute: str
    metric: str
    value: float | None  # None: it cannot be computed (note says why)
    limit: float
    groups: int  # groups large enough to be compared
    note: str = ""

    @property
    def exceeded(self) -> bool:
        return self.value is not None and self.value > self.limit

    def reason(self, where: str) -> str | None:
        """Why this measure fails a gate, naming the metric, attribute, value and limit (None: it passes)."""
        if self.value is None:
            return (f"fairness: {self.metric} on {self.attribute} cannot be computed on {where} ({self.note}); a "
                    "model whose spec lists protected attributes must be measured")
        if self.exceeded:
            return f"fairness: {self.metric} on {self.attribute} is {self.value:.3f} > limit {self.limit}"
        return None


def _groups(column: pd.Series) -> pd.Series:
    # Rows without a value form a group of their own: a model must not treat them worse unseen.
    return column.astype("object").where(column.notna(), MISSING_GROUP).astype(str).reset_index(drop=True)


def _gap(metric: str, y_true: np.ndarray, scores: np.ndarray, threshold: float, groups: pd.Series) -> tuple[
        float | None, str]:
    from fairlearn import metrics as fair

    if metric == "mae_gap":
        from sklearn.metrics import mean_absolute_error

        overall = float(mean_absolute_error(y_true, scores))
        if overall == 0:
            return None, "the model makes no error at all: a relative gap is undefined"
        by_group = fair.MetricFrame(metrics=mean_absolute_error, y_true=y_true, y_pred=scores,
                                    sensitive_features=groups).by_group
        return float((by_group.max() - by_group.min()) / overall), ""
    predicted = (scores >= threshold).astype(int)
    if metric == "equalized_odds_difference":
        one_sided = [str(g) for g, labels in pd.Series(y_true).groupby(groups.to_numpy()) if labels.nunique() < 2]
        if one_sided:
            return None, f"group(s) {one_sided} hold one label only: their error rates are undefined"
    value = float(getattr(fair, metric)(y_true, predicted, sensitive_features=groups))
    return (value, "") if np.isfinite(value) else (None, "fairlearn returned no finite value")


def measure_bias(spec: LifecycleSpec, frame: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray) -> list[
        BiasMeasure]:
    """Every limit of the spec on every protected attribute, over the rows of `frame` (which carries the
    attribute columns) with their labels and scores. Empty when the spec sets no fairness limits."""
    policy: FairnessSpec | None = spec.validation.fairness
    if policy is None:
        return []
    y_true = np.asarray(y_true, dtype="float64")
    scores = np.asarray(scores, dtype="float64")
    out = []
    for attribute in spec.data.protected_attributes:
        for metric, limit in policy.limits.items():
            if attribute not in frame.columns:
                out.append(BiasMeasure(attribute, metric, None, limit, 0, f"column {attribute!r} is missing"))
                continue
            groups = _groups(frame[attribute])
            sizes = groups.value_counts()
            kept = sizes[sizes >= policy.min_group_rows]
            left_out = sorted(map(str, sizes.index.difference(kept.index)))
            note = f"left out, fewer than {policy.min_group_rows} rows: {left_out}" if left_out else ""
            if len(kept) < 2:
                out.append(BiasMeasure(attribute, metric, None, limit, len(kept),
                                       f"{len(kept)} group(s) with at least {policy.min_group_rows} rows, two needed"))
                continue
            rows = groups.isin(kept.index).to_numpy()
            value, why = _gap(metric, y_true[rows], scores[rows], spec.deploy.decision_threshold,
                              groups[rows].reset_index(drop=True))
            out.append(BiasMeasure(attribute, metric, value, limit, len(kept), why or note))
    return out


def bias_evidence(measures: list[BiasMeasure]) -> dict[str, Any]:
    """Per protected attribute, per metric: value, limit, groups compared and any note (for reports)."""
    evidence: dict[str, Any] = {}
    for m in measures:
        evidence.setdefault(m.attribute, {})[m.metric] = {k: v for k, v in asdict(m).items()
                                                          if k not in ("attribute", "metric")}
    return evidence
