"""The validation gates of a version: security scan, schema, metric thresholds, data quality, fairness."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from modelops.errors import SchemaMismatchError
from modelops.platform import Platform
from modelops.spec import FairnessSpec, LifecycleSpec, Window
from modelops.store.records import GovernedVersion
from tasks import as_task
from tasks.data import load_window
from tasks.drift import typed_features
from tasks.metrics import compute_metrics, threshold_failures
from tasks.quality import build_expectations, run_expectations
from tasks.schema import conform_to_signature
from tasks.integrity import open_pinned_model
from tasks.scoring import predict_scores

REFERENCE_SAMPLE_ROWS = 20_000


@dataclass
class ValidationReport:
    passed: bool
    failures: list[str] = field(default_factory=list)
    security: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    holdout_rows: int = 0
    holdout_window: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_window_of(spec: LifecycleSpec, governed: GovernedVersion) -> Window:
    """The window a version was trained on (its lineage in the store), or the spec's for models registered from
    elsewhere."""
    if governed.train_start is not None and governed.train_end is not None:
        return Window(start=governed.train_start.date(), end=governed.train_end.date())
    return spec.training.window


def holdout_window_of(spec: LifecycleSpec, governed: GovernedVersion) -> Window:
    """Out-of-time holdout: the spec's number of days right after the training window."""
    trained = training_window_of(spec, governed)
    return Window(start=trained.end, end=trained.end + timedelta(days=spec.validation.holdout_days))


def fairness_gap(policy: FairnessSpec, y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.Series) -> float:
    from fairlearn import metrics as fair

    measure = getattr(fair, policy.metric)
    return float(measure(y_true, y_pred, sensitive_features=sensitive))


def validate_version(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> tuple[
        ValidationReport, list[dict[str, Any]], pd.DataFrame]:
    """Run every gate; returns the report, the data-quality suite and a reference sample of the training data.
    The files are checked against their registration pin first, and what is judged is exactly what was scanned."""
    report = ValidationReport(passed=False)
    scan, pyfunc = open_pinned_model(platform, spec, governed, "validation")
    report.security = asdict(scan)

    reference = load_window(spec, training_window_of(spec, governed))
    suite = build_expectations(typed_features(reference, spec.data.features), spec.data.features,
                               spec.validation.data_quality)
    sample = reference.sample(min(len(reference), REFERENCE_SAMPLE_ROWS), random_state=0).sort_index()

    if pyfunc is None:
        report.failures += [f"security: {finding}" for finding in scan.findings]
        return report, suite, sample

    window = holdout_window_of(spec, governed)
    holdout = load_window(spec, window)
    report.holdout_rows = len(holdout)
    report.holdout_window = [str(window.start), str(window.end)]
    try:
        features = conform_to_signature(holdout, pyfunc.columns,
                                        f"holdout {window.start}..{window.end}")
    except SchemaMismatchError as exc:
        report.failures.append(f"schema: {exc.what}")
        return report, suite, sample

    scores = predict_scores(pyfunc, features, spec.task)
    y_true = holdout[spec.data.target].to_numpy()
    report.metrics = compute_metrics(spec.task, y_true, scores, spec.deploy.decision_threshold)
    report.failures += [f"metric: {reason}" for reason in threshold_failures(report.metrics,
                                                                             spec.validation.metric_thresholds)]

    quality = run_expectations(suite, typed_features(holdout, spec.data.features))
    report.data_quality = asdict(quality)
    if quality.success_share < spec.validation.data_quality.min_success_share:
        report.failures.append(f"data quality: {quality.evaluated - round(quality.success_share * quality.evaluated)} "
                               f"of {quality.evaluated} expectations failed on the holdout")

    policy = spec.validation.fairness
    if policy is not None and spec.task == "classification":
        predicted = (scores >= spec.deploy.decision_threshold).astype(int)
        for attribute in spec.data.protected_attributes:
            gap = fairness_gap(policy, y_true, predicted, holdout[attribute])
            report.fairness[attribute] = {"metric": policy.metric, "value": gap, "limit": policy.max_difference}
            if gap > policy.max_difference:
                report.failures.append(f"fairness: {policy.metric} on {attribute} is {gap:.3f} > {policy.max_difference}")
    report.passed = not report.failures
    return report, suite, sample


validate_version_task = as_task(validate_version)
