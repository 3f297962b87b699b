"""One monitoring pass over a window of a version's prediction log: drift and, where labels arrived,
performance; verdicts per check and for the window."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.catalog import VersionInfo
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import MonitoringPoint
from modelops.tasks import as_task
from modelops.tasks.data import load_window
from modelops.tasks.drift import BREACH, OK, SKIPPED, WARN, DriftResult, run_drift_report, save_report
from modelops.tasks.performance import PerformanceResult, judge_performance
from modelops.tasks.prediction_log import labelled_predictions, logged_predictions
from modelops.tasks.validation import training_window_of

_SEVERITY = {SKIPPED: -1, OK: 0, WARN: 1, BREACH: 2}


def worst_verdict(*verdicts: str) -> str:
    judged = [v for v in verdicts if v != SKIPPED]
    return max(judged, key=_SEVERITY.__getitem__) if judged else SKIPPED


@dataclass
class MonitorReport:
    model: str
    version: str
    window_start: datetime
    window_end: datetime
    rows: int
    drift: DriftResult | None
    performance: PerformanceResult
    verdict: str
    report_path: str | None = None

    def points(self) -> list[MonitoringPoint]:
        out = [MonitoringPoint("volume", "rows", float(self.rows), None, OK if self.rows else SKIPPED)]
        if self.drift is not None:
            out.append(MonitoringPoint("drift", "drifted_share", self.drift.share, None, self.drift.verdict))
            out += [MonitoringPoint("drift-column", f"{c.column}:{c.method}", c.score, c.threshold,
                                    BREACH if c.drifted else OK) for c in self.drift.columns]
        perf = self.performance
        out.append(MonitoringPoint("performance", perf.metric, perf.value, perf.reference, perf.verdict))
        return out

    def summary(self) -> dict[str, Any]:
        return {"window": [self.window_start.isoformat(), self.window_end.isoformat()], "rows": self.rows,
                "verdict": self.verdict,
                "drift": None if self.drift is None else {"share": round(self.drift.share, 4),
                                                          "verdict": self.drift.verdict,
                                                          "drifted": self.drift.drifted_columns},
                "performance": {"metric": self.performance.metric, "value": self.performance.value,
                                "reference": self.performance.reference, "verdict": self.performance.verdict,
                                "labelled_rows": self.performance.labelled_rows}}


def reference_sample(platform: Platform, spec: LifecycleSpec, info: VersionInfo) -> pd.DataFrame:
    """The training-data sample stored at validation (computed once per version), else the training window."""
    run_id = info.tags.get("validation_run_id")
    if run_id:
        import mlflow.artifacts

        scratch = platform.settings.home / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reference", dst_path=folder,
                                                            tracking_uri=platform.catalog.tracking_uri)
                files = sorted(Path(local).glob("*.parquet"))
                if files:
                    return pd.read_parquet(files[0])
            except OSError:
                pass
    return load_window(spec, training_window_of(spec, info))


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


def monitor_window(platform: Platform, spec: LifecycleSpec, info: VersionInfo, start: datetime,
                   end: datetime) -> MonitorReport:
    current = logged_predictions(platform, spec.name, info.version, start, end)
    reference_metric = info.tags.get(f"holdout_{spec.monitoring.performance.metric}")
    labelled = labelled_predictions(platform, spec.name, info.version, start, end)
    performance = judge_performance(spec, labelled, float(reference_metric) if reference_metric else None)
    if len(current) < spec.monitoring.min_rows:
        return MonitorReport(spec.name, info.version, start, end, len(current), None, performance,
                             worst_verdict(performance.verdict))
    reference = reference_sample(platform, spec, info)
    drift, snapshot = run_drift_report(reference, current, spec.data.features, spec.monitoring.drift)
    stamp = f"{start:%Y%m%d}-{end:%Y%m%d}"
    html = save_report(snapshot, platform.settings.reports_dir / spec.name / f"v{info.version}" / f"drift-{stamp}.html")
    return MonitorReport(spec.name, info.version, start, end, len(current), drift, performance,
                         worst_verdict(drift.verdict, performance.verdict), str(html))


def markdown_summary(report: MonitorReport) -> str:
    lines = [f"# Monitoring {report.model} v{report.version}",
             f"Window {report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC, "
             f"{report.rows} predictions. **Verdict: {report.verdict.upper()}**", "",
             "| check | value | threshold / reference | verdict |", "|---|---|---|---|"]
    if report.drift is not None:
        lines.append(f"| drifted columns share | {report.drift.share:.2f} | warn/breach at spec limits | "
                     f"{report.drift.verdict} |")
        for column in report.drift.worst(5):
            lines.append(f"| drift `{column.column}` ({column.method}) | {column.score:.3f} | {column.threshold} | "
                         f"{'drifted' if column.drifted else 'ok'} |")
    perf = report.performance
    value = "n/a" if perf.value is None else f"{perf.value:.4f}"
    reference = "n/a" if perf.reference is None else f"{perf.reference:.4f}"
    lines.append(f"| {perf.metric} on {perf.labelled_rows} labelled rows | {value} | {reference} | {perf.verdict} |")
    if report.report_path:
        lines += ["", f"Evidently report: `{report.report_path}`"]
    return "\n".join(lines)


monitor_window_task = as_task(monitor_window)
