"""One monitoring pass over a window of a version's prediction log. Four checks, each ok / warn / breach
(or skipped when the window cannot be judged): drift, data quality, performance once labels arrived, and
service health (volume, error rate, latency)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelops import events
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion, MonitoringPoint
from tasks import as_task
from tasks.audit import record_stage
from tasks.data import load_window
from tasks.drift import (
    BREACH, OK, SKIPPED, WARN, DriftResult, run_drift_report, save_report, typed_features,
)
from tasks.drift_stats import ReferenceStats, fast_drift, supports
from tasks.performance import PerformanceResult, judge_performance
from tasks.prediction_log import labelled_predictions, logged_predictions
from tasks.quality import run_expectations
from tasks.validation import training_window_of

_SEVERITY = {SKIPPED: -1, OK: 0, WARN: 1, BREACH: 2}
# The event each check's breach emits.
BREACH_EVENTS = {"drift": events.DRIFT_DETECTED, "performance": events.PERFORMANCE_DEGRADED,
                 "data_quality": events.DATA_QUALITY_FAILED, "service": events.SLA_BREACHED}
# Breaches that mean the model no longer fits the world, so retraining can help.
RETRAIN_CHECKS = ("drift", "performance")


def worst_verdict(*verdicts: str) -> str:
    judged = [v for v in verdicts if v != SKIPPED]
    return max(judged, key=_SEVERITY.__getitem__) if judged else SKIPPED


@dataclass
class CheckResult:
    check: str
    verdict: str
    summary: str
    # name -> (value, limit): what an operator compares, in alerts and artifacts
    values: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass
class MonitorReport:
    model: str
    version: str
    window_start: datetime
    window_end: datetime
    rows: int
    checks: dict[str, CheckResult]
    drift: DriftResult | None = None
    performance: PerformanceResult | None = None
    report_path: str | None = None

    @property
    def verdict(self) -> str:
        return worst_verdict(*(c.verdict for c in self.checks.values()))

    def breaches(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.verdict == BREACH]

    def points(self) -> list[MonitoringPoint]:
        out = []
        for check in self.checks.values():
            out += [MonitoringPoint(check.check, metric, value, limit, check.verdict)
                    for metric, (value, limit) in check.values.items()]
        if self.drift is not None:
            out += [MonitoringPoint("drift-column", f"{c.column}:{c.method}", c.score, c.threshold,
                                    BREACH if c.drifted else OK) for c in self.drift.columns]
        return out

    def summary(self) -> dict[str, Any]:
        return {"window": [self.window_start.isoformat(), self.window_end.isoformat()], "rows": self.rows,
                "verdict": self.verdict,
                "checks": {name: {"verdict": c.verdict, "summary": c.summary} for name, c in self.checks.items()},
                "drifted_columns": self.drift.drifted_columns if self.drift else []}


# --- reference data, prepared once per version -------------------------------------------------------------
def reference_sample(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> pd.DataFrame:
    """The training-data sample stored at validation, else the training window itself."""
    run_id = governed.validation_run_id
    if run_id:
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(dir=_scratch(platform)) as folder:
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reference", dst_path=folder,
                                                            tracking_uri=platform.catalog.tracking_uri)
                files = sorted(Path(local).glob("*.parquet"))
                if files:
                    return pd.read_parquet(files[0])
            except OSError:
                pass
    return load_window(spec, training_window_of(spec, governed))


def reference_stats(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion) -> ReferenceStats:
    """Cleaned reference statistics of a version, computed on first use and kept under the state directory."""
    path = platform.settings.home / "reference-stats" / spec.name / f"v{governed.version}.npz"
    if not path.is_file():
        ReferenceStats.from_frame(reference_sample(platform, spec, governed), spec.data.features).save(path)
    return ReferenceStats.load(path)


_SUITES: dict[tuple[str, str], list[dict[str, Any]]] = {}


def expectation_suite(platform: Platform, governed: GovernedVersion) -> list[dict[str, Any]] | None:
    """The suite stored with the version at validation (kept in memory once read; a miss is not cached)."""
    run_id = governed.validation_run_id
    if not run_id:
        return None
    key = (platform.catalog.tracking_uri, run_id)
    if key not in _SUITES:
        payload = platform.catalog.load_artifact_dict(run_id, "data_quality/expectations.json")
        if not payload or "expectations" not in payload:
            return None
        _SUITES[key] = payload["expectations"]
    return _SUITES[key]


def _scratch(platform: Platform) -> Path:
    folder = platform.settings.home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- the window -------------------------------------------------------------------------------------------
def default_window(platform: Platform, spec: LifecycleSpec, version: str,
                   window_end: datetime | None, window_days: int | None) -> tuple[datetime, datetime] | None:
    """[end - days, end): end defaults to just after the newest logged prediction of the version."""
    if window_end is None:
        batches = platform.store.prediction_batches(spec.name, version)
        if not batches:
            return None
        window_end = max(b.last_event_at for b in batches) + timedelta(seconds=1)
    days = window_days or spec.monitoring.window_days
    return window_end - timedelta(days=days), window_end


# --- the checks -------------------------------------------------------------------------------------------
def drift_check(drift: DriftResult, spec: LifecycleSpec) -> CheckResult:
    policy = spec.monitoring.drift
    worst = ", ".join(f"{c.column} {c.score:.2f}" for c in drift.worst(3) if c.drifted) or "none"
    unjudged = f"; no values to judge in {drift.unjudged}" if drift.unjudged else ""
    return CheckResult("drift", drift.verdict,
                       f"{len(drift.drifted_columns)} of {len(drift.columns)} columns drifted (worst: {worst})"
                       + unjudged, {"drifted_share": (drift.share, policy.breach_share)})


def quality_check(suite: list[dict[str, Any]] | None, current: pd.DataFrame, spec: LifecycleSpec) -> CheckResult:
    if suite is None:
        return CheckResult("data_quality", SKIPPED, "no expectation suite stored with this version")
    result = run_expectations(suite, typed_features(current, spec.data.features))
    policy = spec.monitoring.data_quality
    verdict = BREACH if result.success_share < policy.breach_below else WARN if result.success_share < \
        policy.warn_below else OK
    failed = ", ".join(f"{f['expectation'].removeprefix('expect_')}({f['column']})" for f in result.failures[:3])
    return CheckResult("data_quality", verdict,
                       f"{result.success_share:.0%} of {result.evaluated} expectations met"
                       + (f"; failing: {failed}" if failed else ""),
                       {"success_share": (result.success_share, policy.breach_below)})


def performance_check(performance: PerformanceResult, spec: LifecycleSpec) -> CheckResult:
    values = {performance.metric: (performance.value, performance.reference),
              "labelled_rows": (float(performance.labelled_rows), float(spec.monitoring.performance.min_labelled_rows)),
              "label_delay_hours": (performance.median_label_delay_hours, None)}
    if performance.verdict == SKIPPED:
        return CheckResult("performance", SKIPPED, f"{performance.labelled_rows} labelled predictions: too few to "
                           "judge", values)
    return CheckResult("performance", performance.verdict,
                       f"{performance.metric} {performance.value:.4f} vs {performance.reference:.4f} at validation "
                       f"({performance.drop:+.1%} drop) on {performance.labelled_rows} labelled predictions", values)


def service_check(current: pd.DataFrame, failed_rows: int, spec: LifecycleSpec) -> CheckResult:
    sla = spec.monitoring.sla
    rows = len(current)
    error_rate = failed_rows / (rows + failed_rows) if rows + failed_rows else 0.0
    latency = current["latency_ms"].to_numpy(dtype="float64") if rows else np.array([])
    p50, p95, p99 = (np.percentile(latency, [50, 95, 99]) if len(latency) else (np.nan, np.nan, np.nan))
    limits = [(error_rate, sla.max_error_rate), (p95, sla.latency_p95_ms)]
    if sla.latency_p99_ms is not None:
        limits.append((p99, sla.latency_p99_ms))
    judged = [(v, limit) for v, limit in limits if not np.isnan(v)]
    verdict = BREACH if any(v > limit for v, limit in judged) else \
        WARN if any(v > limit * sla.warn_ratio for v, limit in judged) else OK
    return CheckResult("service", verdict,
                       f"{rows} predictions, {failed_rows} failed rows ({error_rate:.2%}), latency p50 {p50:.0f} ms "
                       f"p95 {p95:.0f} ms p99 {p99:.0f} ms per {spec.deploy.chunk_rows}-row batch",
                       {"volume": (float(rows), None), "error_rate": (error_rate, sla.max_error_rate),
                        "latency_p50_ms": (float(p50), None), "latency_p95_ms": (float(p95), sla.latency_p95_ms),
                        "latency_p99_ms": (float(p99), sla.latency_p99_ms)})


def monitor_window(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, start: datetime, end: datetime,
                   full_report: bool = False) -> MonitorReport:
    current = logged_predictions(platform, spec.name, governed.version, start, end)
    failed_rows = sum(b.rows for b in platform.store.prediction_batches(spec.name, governed.version, start, end,
                                                                         include_failed=True) if b.status == "failed")
    reference_metric = governed.holdout_metrics.get(spec.monitoring.performance.metric)
    labelled = labelled_predictions(platform, spec.name, governed.version, start, end)
    performance = judge_performance(spec, labelled, reference_metric)
    checks = {"service": service_check(current, failed_rows, spec),
              "performance": performance_check(performance, spec)}
    report = MonitorReport(spec.name, governed.version, start, end, len(current), checks, performance=performance)
    if len(current) < spec.monitoring.min_rows:
        reason = f"{len(current)} predictions, fewer than the {spec.monitoring.min_rows} needed"
        checks["drift"] = CheckResult("drift", SKIPPED, reason)
        checks["data_quality"] = CheckResult("data_quality", SKIPPED, reason)
        return report

    policy = spec.monitoring.drift
    snapshot = None
    checks["data_quality"] = quality_check(expectation_suite(platform, governed), current, spec)
    try:
        if supports(policy):
            report.drift = fast_drift(reference_stats(platform, spec, governed), current, spec.data.features, policy)
        else:
            report.drift, snapshot = run_drift_report(reference_sample(platform, spec, governed), current,
                                                      spec.data.features, policy)
        checks["drift"] = drift_check(report.drift, spec)
    except ValueError as exc:  # Evidently refuses columns without values; data quality says why
        checks["drift"] = CheckResult("drift", SKIPPED, f"drift cannot be judged: {exc}")
    if (full_report or report.verdict == BREACH) and report.drift is not None:
        try:
            if snapshot is None:
                _, snapshot = run_drift_report(reference_sample(platform, spec, governed), current,
                                               spec.data.features, policy)
            stamp = f"{start:%Y%m%d}-{end:%Y%m%d}"
            report.report_path = str(save_report(snapshot, platform.settings.reports_dir / spec.name /
                                                 f"v{governed.version}" / f"drift-{stamp}.html"))
        except ValueError:
            report.report_path = None  # Evidently cannot render a window with an empty column
    return report


def markdown_summary(report: MonitorReport, history: list[tuple[str, str]]) -> str:
    """What an operator reads in the Prefect UI: verdicts, the worst columns, the trend of recent runs."""
    lines = [f"# {report.model} v{report.version}: {report.verdict.upper()}",
             f"Window {report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC, "
             f"{report.rows} predictions.", "", "| check | verdict | detail |", "|---|---|---|"]
    lines += [f"| {c.check} | **{c.verdict}** | {c.summary} |" for c in report.checks.values()]
    if report.drift is not None:
        lines += ["", "| column | method | score | threshold | drifted |", "|---|---|---|---|---|"]
        lines += [f"| {c.column} | {c.method} | {c.score:.4f} | {c.threshold} | {'yes' if c.drifted else 'no'} |"
                  for c in report.drift.worst(5)]
    if history:
        lines += ["", "Trend (oldest first): " + " → ".join(f"{when} {verdict}" for when, verdict in history)]
    if report.report_path:
        lines += ["", f"Evidently report: `{report.report_path}`"]
    return "\n".join(lines)


def announce_verdicts(platform: Platform, spec: LifecycleSpec, report: MonitorReport, occasion: str) -> tuple[
        list[str], bool]:
    """Audit the verdict and emit one event per breached check. A drift or performance breach asks for
    retraining (the event's resource label the retrain trigger matches) at most once per the spec's cool-down."""
    summary = {**report.summary(), "occasion": occasion, "report": report.report_path}
    breaches = report.breaches()
    retrain_check = next((c for c in breaches if c in RETRAIN_CHECKS), None)
    retrain_requested = False
    if retrain_check and "retrain" in spec.monitoring.on_breach:
        earlier = platform.store.claim_retrain(spec.name, report.version, retrain_check, spec.retrain.cooldown_hours)
        retrain_requested = earlier is None
        summary["retrain"] = "requested" if retrain_requested else f"already requested at {earlier.isoformat()}"
    emitted = []
    for check in breaches or [None]:
        event = BREACH_EVENTS[check] if check else events.MONITORED
        labels = {events.RETRAIN_LABEL: "requested"} if retrain_requested and check == retrain_check else None
        if record_stage(stage="monitor", action="judge-window", model=spec.name, version=report.version,
                        outcome=f"breach:{check}" if check else report.verdict, evidence=summary, event=event,
                        labels=labels):
            emitted.append(event)
    return emitted, retrain_requested


monitor_window_task = as_task(monitor_window)
