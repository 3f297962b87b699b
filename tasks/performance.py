"""Model performance on labelled production traffic, judged against the version's validation holdout."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from modelops.spec import LifecycleSpec
from tasks.metrics import compute_metrics, relative_drop
from tasks.verdicts import SKIPPED, rising_verdict


@dataclass(frozen=True)
class PerformanceResult:
    metric: str
    labelled_rows: int
    value: float | None
    reference: float | None
    drop: float | None
    verdict: str
    median_label_delay_hours: float | None = None


def judge_performance(spec: LifecycleSpec, labelled: pd.DataFrame, reference: float | None) -> PerformanceResult:
    policy = spec.monitoring.performance
    rows = len(labelled)
    delay = float(labelled["label_delay_hours"].median()) if rows and "label_delay_hours" in labelled else None
    if rows < policy.min_labelled_rows or reference is None:
        return PerformanceResult(policy.metric, rows, None, reference, None, SKIPPED, delay)
    value = compute_metrics(spec.task, labelled["label"].to_numpy(), labelled["score"].to_numpy(),
                            spec.deploy.decision_threshold).get(policy.metric)
    if value is None:
        return PerformanceResult(policy.metric, rows, None, reference, None, SKIPPED, delay)
    drop = relative_drop(policy.metric, reference, value)
    verdict = rising_verdict(drop, policy.warn_drop, policy.breach_drop)
    return PerformanceResult(policy.metric, rows, value, reference, drop, verdict, delay)
