"""One monitoring pass over a window of a version's prediction log. Four checks, each ok / warn / breach
(or skipped when the window cannot be judged): drift, data quality, performance once labels arrived, and
service health (volume, error rate, latency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from modelops import events
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion, MonitoringPoint
from tasks import as_task
from tasks.audit import record_stage
from tasks.bias import measure_bias
from tasks.drift import DriftResult, run_drift_report, save_report, typed_features
from tasks.drift_stats import fast_drift, supports
from tasks.performance import PerformanceResult, judge_performance
from tasks.prediction_log import labelled_predictions, logged_predictions
from tasks.quality import run_expectations
from tasks.reference import drift_reference
from tasks.verdicts import BREACH, OK, SKIPPED, falling_verdict, limit_verdict, worst_verdict
from tasks.windows import TimeWindow

# The event each check's breach emits.
BREACH_EVENTS = {"drift": events.DRIFT_DETECTED, "performance": events.PERFORMANCE_DEGRADED,
                 "data_quality": events.DATA_QUALITY_FAILED, "service": events.SLA_BREACHED,
                 "bias": events.BIAS_DETECTED}
# Breaches that mean the model no longer fits the world, so retraining can help. A retrained version for a bias
# breach must pass validation's bias limits before it can serve.
RETRAIN_CHECKS = ("drift", "performance", "bias")


@dataclass
class CheckResult:
    check: str
    verdict: str
    summary: str
    # name -> (value, limit): what an operator compares, in alerts and artifacts
    values: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # name -> the verdict of that value alone, where it differs from the check's (a value not judged: SKIPPED)
    value_verdicts: dict[str, str] = field(default_factory=dict)


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
    reference: str | None = None  # what drift was judged against

    @property
    def verdict(self) -> str:
        return worst_verdict(*(c.verdict for c in self.checks.values()))

    def breaches(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.verdict == BREACH]

    def points(self) -> list[MonitoringPoint]:
        out = []
        for check in self.checks.values():
            out += [MonitoringPoint(check.check, metric, value, limit, check.value_verdicts.get(metric, check.verdict))
                    for metric, (value, limit) in check.values.items()]
        if self.drift is not None:
            out += [MonitoringPoint("drift-column", f"{c.column}:{c.method}", c.score, c.threshold,
                                    BREACH if c.drifted else OK) for c in self.drift.columns]
        return out

    def summary(self) -> dict[str, Any]:
        return {"window": [self.window_start.isoformat(), self.window_end.isoformat()], "rows": self.rows,
                "verdict": self.verdict, "reference": self.reference,
                "checks": {name: {"verdict": c.verdict, "summary": c.summary} for name, c in self.checks.items()},
                "drifted_columns": self.drift.drifted_columns if self.drift else []}


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


# --- the checks -------------------------------------------------------------------------------------------
def drift_check(drift: DriftResult, spec: LifecycleSpec, reference: str | None = None) -> CheckResult:
    policy = spec.monitoring.drift
    worst = ", ".join(f"{c.column} {c.score:.2f}" for c in drift.worst(3) if c.drifted) or "none"
    unjudged = f"; no values to judge in {drift.unjudged}" if drift.unjudged else ""
    against = f" against the {reference}" if reference else ""
    return CheckResult("drift", drift.verdict,
                       f"{len(drift.drifted_columns)} of {len(drift.columns)} columns drifted{against} (worst: "
                       f"{worst})" + unjudged, {"drifted_share": (drift.share, policy.breach_share)})


def quality_check(suite: list[dict[str, Any]] | None, current: pd.DataFrame, spec: LifecycleSpec) -> CheckResult:
    if suite is None:
        return CheckResult("data_quality", SKIPPED, "no expectation suite stored with this version")
    result = run_expectations(suite, typed_features(current, spec.data.features))
    policy = spec.monitoring.data_quality
    verdict = falling_verdict(result.success_share, policy.warn_below, policy.breach_below)
    failed = ", ".join(f"{f['expectation'].removeprefix('expect_')}({f['column']})" for f in result.failures[:3])
    return CheckResult("data_quality", verdict,
                       f"{result.success_share:.0%} of {result.evaluated} expectations met"
                       + (f"; failing: {failed}" if failed else ""),
                       {"success_share": (result.success_share, policy.breach_below)})


def performance_check(performance: PerformanceResult, spec: LifecycleSpec) -> CheckResult:
    values = {performance.metric: (performance.value, performance.reference),
              "labelled_rows": (float(performance.labelled_rows), float(spec.monitoring.performance.min_labelled_rows)),
              "label_delay_hours": (performance.median_label_delay_hours, None)}
    enough = {"labelled_rows": OK if performance.labelled_rows >= spec.monitoring.performance.min_labelled_rows
              else SKIPPED}
    if performance.verdict == SKIPPED:
        return CheckResult("performance", SKIPPED, f"{performance.labelled_rows} labelled predictions: too few to "
                           "judge", values, {**enough, performance.metric: SKIPPED})
    return CheckResult("performance", performance.verdict,
                       f"{performance.metric} {performance.value:.4f} vs {performance.reference:.4f} at validation "
                       f"({performance.drop:+.1%} drop) on {performance.labelled_rows} labelled predictions", values,
                       enough)


def bias_check(spec: LifecycleSpec, labelled: pd.DataFrame) -> CheckResult:
    """The spec's bias limits on labelled predictions: each gap breaches past its limit and warns past warn_ratio
    of it. Too few labelled rows (monitoring.performance.min_labelled_rows), or a gap that cannot be computed in
    this window (a group absent), is not judged."""
    policy = spec.validation.fairness
    assert policy is not None, "only specs with fairness limits have a bias check"
    needed = spec.monitoring.performance.min_labelled_rows
    if len(labelled) < needed:
        return CheckResult("bias", SKIPPED, f"{len(labelled)} labelled predictions: too few to judge bias (needs "
                                            f"{needed})")
    measures = measure_bias(spec, labelled, labelled["label"].to_numpy(), labelled["score"].to_numpy())
    values = {f"{m.metric}:{m.attribute}": (m.value, m.limit) for m in measures}
    verdicts = {f"{m.metric}:{m.attribute}": SKIPPED if m.value is None else
                limit_verdict(m.value, m.limit, policy.warn_ratio) for m in measures}
    verdict = worst_verdict(*verdicts.values())
    over = [f"{m.metric} on {m.attribute} {m.value:.3f} > {m.limit}" for m in measures if m.exceeded]
    unjudged = [f"{m.metric} on {m.attribute} ({m.note})" for m in measures if m.value is None]
    summary = (f"over the limit: {'; '.join(over)}" if over else f"{len(measures) - len(unjudged)} gap(s) within "
               "their limits") + f" on {len(labelled)} labelled predictions"
    return CheckResult("bias", verdict, summary + (f"; not computed: {'; '.join(unjudged)}" if unjudged else ""),
                       values, verdicts)


def batch_latencies(current: pd.DataFrame) -> np.ndarray:
    """One latency per scoring micro-batch. Every row of a micro-batch carries that batch's latency, and the log
    keeps a scored batch's rows in order: a micro-batch is a run of rows with one batch id and one latency."""
    if current.empty:
        return np.array([], dtype="float64")
    frame = current[["batch_id", "latency_ms"]]
    starts = (frame != frame.shift()).any(axis=1).to_numpy()
    return frame["latency_ms"].to_numpy(dtype="float64")[starts]


def service_check(current: pd.DataFrame, failed_rows: int, spec: LifecycleSpec,
                  stream_lag: Any = None) -> CheckResult:
    """Error rate always; latency percentiles (over micro-batches) only from sla.min_batches batches on; a streaming
    model's consumer lag (serving.streaming.Lag, or a text saying why it could not be read) against sla.stream_lag_ms."""
    sla = spec.monitoring.sla
    rows = len(current)
    error_rate = failed_rows / (rows + failed_rows) if rows + failed_rows else 0.0
    latency = batch_latencies(current)
    p50, p95, p99 = (np.percentile(latency, [50, 95, 99]) if len(latency) else (np.nan, np.nan, np.nan))
    verdicts = {"error_rate": limit_verdict(error_rate, sla.max_error_rate, sla.warn_ratio)}
    latency_judged = len(latency) >= sla.min_batches
    verdicts["scoring_batches"] = OK if latency_judged else SKIPPED
    verdicts["latency_p95_ms"] = verdicts["latency_p99_ms"] = SKIPPED
    if latency_judged:
        verdicts["latency_p95_ms"] = limit_verdict(p95, sla.latency_p95_ms, sla.warn_ratio)
        if sla.latency_p99_ms is not None:
            verdicts["latency_p99_ms"] = limit_verdict(p99, sla.latency_p99_ms, sla.warn_ratio)
        latency_text = (f"latency p50 {p50:.0f} ms p95 {p95:.0f} ms p99 {p99:.0f} ms over {len(latency)} "
                        f"{spec.deploy.chunk_rows}-row scoring batches")
    else:
        latency_text = f"latency not judged: {len(latency)} scoring batches < {sla.min_batches}"
    values: dict[str, tuple[float | None, float | None]] = {
        "volume": (float(rows), None), "error_rate": (error_rate, sla.max_error_rate),
        "scoring_batches": (float(len(latency)), float(sla.min_batches)),
        "latency_p50_ms": (float(p50), None), "latency_p95_ms": (float(p95), sla.latency_p95_ms),
        "latency_p99_ms": (float(p99), sla.latency_p99_ms)}
    if isinstance(stream_lag, str):
        values["stream_lag_ms"], verdicts["stream_lag_ms"] = (None, sla.stream_lag_ms), SKIPPED
        latency_text += f"; stream lag not judged: {stream_lag}"
    elif stream_lag is not None:
        values["stream_lag_ms"] = (float(stream_lag.oldest_ms), sla.stream_lag_ms)
        verdicts["stream_lag_ms"] = limit_verdict(stream_lag.oldest_ms, sla.stream_lag_ms, sla.warn_ratio)
        latency_text += (f"; stream lag {stream_lag.oldest_ms:.0f} ms ({stream_lag.waiting} records waiting, "
                         f"limit {sla.stream_lag_ms:.0f} ms)")
    return CheckResult("service", worst_verdict(*verdicts.values()),
                       f"{rows} predictions, {failed_rows} failed rows ({error_rate:.2%}), {latency_text}",
                       values, verdicts)


def read_stream_lag(platform: Platform, spec: LifecycleSpec) -> Any:
    """The consumer lag of a streaming model now (None for a model that does not stream; a text when Redis cannot
    be read: the lag is then reported as not judged, never as fine)."""
    if "stream" not in spec.deploy.targets:
        return None
    import redis

    from modelops.services.redis_server import redis_url
    from serving.streaming import stream_lag

    url = redis_url(platform.settings)
    try:
        return stream_lag(redis.Redis.from_url(url, socket_timeout=5, decode_responses=True), spec.name)
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {url} cannot be read ({type(exc).__name__}: {exc})"


def monitor_window(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, start: datetime, end: datetime,
                   full_report: bool = False) -> MonitorReport:
    current = logged_predictions(platform, spec.name, governed.version, start, end)
    failed_rows = sum(b.rows for b in platform.store.prediction_batches(spec.name, governed.version, start, end,
                                                                         include_failed=True) if b.status == "failed")
    reference_metric = governed.holdout_metrics.get(spec.monitoring.performance.metric)
    labelled = labelled_predictions(platform, spec.name, governed.version, start, end)
    performance = judge_performance(spec, labelled, reference_metric)
    checks = {"service": service_check(current, failed_rows, spec, read_stream_lag(platform, spec)),
              "performance": performance_check(performance, spec)}
    if spec.validation.fairness is not None:
        checks["bias"] = bias_check(spec, labelled)
    report = MonitorReport(spec.name, governed.version, start, end, len(current), checks, performance=performance)
    if len(current) < spec.monitoring.min_rows:
        reason = f"{len(current)} predictions, fewer than the {spec.monitoring.min_rows} needed"
        checks["drift"] = CheckResult("drift", SKIPPED, reason)
        checks["data_quality"] = CheckResult("data_quality", SKIPPED, reason)
        return report

    checks["data_quality"] = quality_check(expectation_suite(platform, governed), current, spec)
    reference = drift_reference(platform, spec, governed, TimeWindow(start, end))
    report.reference = reference.description
    if not reference.judgeable:
        checks["drift"] = CheckResult("drift", SKIPPED, reference.note)
        return report
    policy = spec.monitoring.drift
    snapshot = None
    try:
        if supports(policy):
            report.drift = fast_drift(reference.stats(platform, spec, governed), current, spec.data.features, policy)
        else:
            report.drift, snapshot = run_drift_report(reference.sample(platform, spec, governed), current,
                                                      spec.data.features, policy)
        checks["drift"] = drift_check(report.drift, spec, reference.description)
    except ValueError as exc:  # Evidently refuses columns without values; data quality says why
        checks["drift"] = CheckResult("drift", SKIPPED, f"drift cannot be judged: {exc}")
    if (full_report or report.verdict == BREACH) and report.drift is not None:
        try:
            if snapshot is None:
                _, snapshot = run_drift_report(reference.sample(platform, spec, governed), current,
                                               spec.data.features, policy)
            stamp = f"{start:%Y%m%d}-{end:%Y%m%d}"
            report.report_path = str(save_report(snapshot, platform.settings.reports_dir / spec.name /
                                                 f"v{governed.version}" / f"drift-{stamp}.html"))
        except ValueError:
            report.report_path = None  # Evidently cannot render a window with an empty column
    return report


def markdown_summary(report: MonitorReport, history: list[tuple[str, str]], report_line: str | None = None,
                     plot: str | None = None) -> str:
    """What an operator reads in the Prefect UI: verdicts, the worst columns, the trend of recent runs, the plot of
    the history (a Markdown image) and where Evidently's report opens (tasks.report_artifacts.report_line; never
    the server's file path, which a browser elsewhere cannot open)."""
    lines = [f"# {report.model} v{report.version}: {report.verdict.upper()}",
             f"Window {report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC, "
             f"{report.rows} predictions." + (f" Drift reference: {report.reference}." if report.reference else ""),
             "", "| check | verdict | detail |", "|---|---|---|"]
    lines += [f"| {c.check} | **{c.verdict}** | {c.summary} |" for c in report.checks.values()]
    if report.drift is not None:
        lines += ["", "| column | method | score | threshold | drifted |", "|---|---|---|---|---|"]
        lines += [f"| {c.column} | {c.method} | {c.score:.4f} | {c.threshold} | {'yes' if c.drifted else 'no'} |"
                  for c in report.drift.worst(5)]
    if history:
        lines += ["", "Trend (oldest first): " + " → ".join(f"{when} {verdict}" for when, verdict in history)]
    if plot:
        lines += ["", plot]
    if report_line:
        lines += ["", report_line]
    return "\n".join(lines)


def announce_verdicts(platform: Platform, spec: LifecycleSpec, report: MonitorReport, occasion: str,
                      report_uri: str | None = None) -> tuple[list[str], bool]:
    """Audit the verdict and emit one event per breached check. A drift or performance breach asks for
    retraining (the event's resource label the retrain trigger matches) at most once per the spec's cool-down.
    `report_uri`: where MLflow keeps Evidently's report (runs:/<run>/<path>)."""
    summary = {**report.summary(), "occasion": occasion, "report": report.report_path}
    if report_uri:
        summary["report_artifact"] = report_uri
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
