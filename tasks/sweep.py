"""Drift verdicts for many models in one pass: each model pays for its statistics, not for a report.

Models are split into chunks, one Prefect task per chunk (a task per model would spend more on orchestration
than on statistics); verdicts are stored in bulk. Where does a model's data come from is a `SweepSource`, so the
same engine runs on the platform's prediction logs and on a benchmark's synthetic data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from modelops.catalog import CHAMPION
from modelops.platform import Platform
from modelops.settings import Settings
from modelops.spec import DriftSpec, Features, load_spec
from modelops.store.records import GovernanceStore, MonitoringPoint
from tasks import as_task
from tasks.drift import DriftResult
from tasks.drift_stats import ReferenceStats, fast_drift, supports
from tasks.progress import advance, tracked
from tasks.verdicts import BREACH, OK, SKIPPED


@dataclass(frozen=True)
class SweepInput:
    model: str
    version: str
    features: Features
    policy: DriftSpec
    reference: ReferenceStats | None  # None: the reference cannot judge this window, `skipped` says why
    current: pd.DataFrame
    window_start: datetime
    window_end: datetime
    skipped: str = ""


@dataclass(frozen=True)
class SweepVerdict:
    """A model's drift verdict; a model that could not be judged has no version or window and a note why."""

    model: str
    version: str | None
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    drift: DriftResult | None
    note: str = ""  # an error: the model could not be judged
    skipped: str = ""  # judged not judgeable (a reference with too few rows), not an error


class SweepSource(Protocol):
    def load(self, model: str) -> SweepInput | None: ...


class PlatformSource:
    """A model's champion, its newest monitoring window of logged predictions and the reference its spec chooses.

    The training reference's statistics are cached per version; a preceding or year-ago reference costs one more
    read of the prediction log (the same size as the window's). A year-ago period the log does not hold would need
    the model's data loader: the sweep does not call loaders (a thousand of them, each of unknown cost), so such a
    model is skipped with a note, and its own monitor run judges it."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent to a Dask worker as the settings alone: the worker opens the same store and logs itself.
        return _platform_source, (self.platform.settings,)

    def load(self, model: str) -> SweepInput | None:
        from tasks.integrity import require_governed
        from tasks.prediction_log import logged_predictions
        from tasks.reference import drift_reference
        from tasks.windows import default_window

        spec = load_spec(model)
        version = self.platform.store.serving_version(model, CHAMPION)
        window = default_window(self.platform, spec, version, None, None) if version else None
        if version is None or window is None:
            return None
        current = logged_predictions(self.platform, model, version, *window)
        if len(current) < spec.monitoring.min_rows or not supports(spec.monitoring.drift):
            return None
        governed = require_governed(self.platform, model, version)
        reference = drift_reference(self.platform, spec, governed, window, use_loader=False)
        stats = reference.stats(self.platform, spec, governed) if reference.judgeable else None
        return SweepInput(model, version, spec.data.features, spec.monitoring.drift, stats, current, *window,
                          skipped=reference.note)


def _platform_source(settings: Settings) -> PlatformSource:
    from modelops.platform import platform_for

    return PlatformSource(platform_for(settings))


def judge_drift(source: SweepSource, model: str) -> SweepVerdict | None:
    """One model's drift verdict (None: nothing to judge); an error is its verdict's note."""
    try:
        item = source.load(model)
        if item is None:
            return None
        if item.reference is None:
            return SweepVerdict(item.model, item.version, item.window_start, item.window_end, len(item.current),
                                None, skipped=item.skipped)
        drift = fast_drift(item.reference, item.current, item.features, item.policy)
    except Exception as exc:  # noqa: BLE001 - one broken model must not cost the chunk its verdicts
        return SweepVerdict(model, None, None, None, 0, None, f"{type(exc).__name__}: {exc}")
    return SweepVerdict(item.model, item.version, item.window_start, item.window_end, len(item.current), drift)


def drift_chunk(source: SweepSource, models: list[str]) -> list[SweepVerdict]:
    verdicts = []
    for model in models:
        verdict = judge_drift(source, model)
        if verdict is not None:
            verdicts.append(verdict)
        advance("sweep")
    return verdicts


drift_chunk_task = as_task(drift_chunk, retries=1)


def chunks(models: list[str], size: int) -> list[list[str]]:
    return [models[i:i + size] for i in range(0, len(models), size)]


def local_chunk_runner() -> Any:
    """Threads of this process, one per core. The statistics hold the GIL much of the time: Prefect's default pool
    (cores + 4 threads) made a 1,000-model sweep take 11-12 s where two threads take 7 s on 2 cores."""
    from prefect.task_runners import ThreadPoolTaskRunner

    # The cores this process may run on (a CPU set in a container), not every core of the machine.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolTaskRunner(max_workers=cores)


def sweep_drift(source: SweepSource, models: list[str], chunk_size: int, runner: Any | None = None
                ) -> list[SweepVerdict]:
    """Run inside a flow: one task per chunk, run concurrently by `runner` (a Prefect task runner, e.g. Dask's; None:
    threads of this process). The source goes to each chunk's worker: it must be picklable and know how to reach
    the data."""
    remote = runner is not None
    with tracked("sweep", f"sweeping {len(models)} models for drift", len(models), "models") as tracker, \
            (runner or local_chunk_runner()) as started:
        parts = chunks(models, chunk_size)
        futures = [started.submit(drift_chunk_task, {"source": source, "models": chunk}) for chunk in parts]
        verdicts = []
        for chunk, future in zip(parts, futures):
            verdicts += future.result()
            if remote:
                tracker.advance(len(chunk))  # a worker elsewhere cannot reach this process's listener
        return verdicts


def store_verdicts(store: GovernanceStore, verdicts: list[SweepVerdict]) -> int:
    """All verdicts of a sweep in one transaction: the same time series the per-model monitor writes."""
    runs = []
    for verdict in (v for v in verdicts if v.version is not None):
        drift = verdict.drift
        points = [MonitoringPoint("volume", "rows", float(verdict.rows), None, OK)]
        if drift is not None:
            points.append(MonitoringPoint("drift", "drifted_share", drift.share, None, drift.verdict))
            points += [MonitoringPoint("drift-column", f"{c.column}:{c.method}", c.score, c.threshold,
                                       BREACH if c.drifted else OK) for c in drift.columns]
        runs.append(dict(model=verdict.model, version=verdict.version, window_start=verdict.window_start,
                         window_end=verdict.window_end, rows=verdict.rows,
                         verdict=drift.verdict if drift else SKIPPED, report_path=None, points=points))
    return store.record_monitoring_runs(runs)


def follow_up_breach(platform: Platform, verdict: SweepVerdict, occasion: str) -> str:
    """Evidently's report (against the reference the spec chose, as the verdict was), the breach event (and
    retrain request) and the alert of one breached model, as the per-model monitor does."""
    from tasks.alerting import process_alerts
    from tasks.drift import run_drift_report, save_report
    from tasks.integrity import require_governed
    from tasks.monitoring import MonitorReport, announce_verdicts, drift_check
    from tasks.prediction_log import logged_predictions
    from tasks.reference import drift_reference
    from modelops.mlflow_ui import mlflow_ui_url
    from tasks.report_artifacts import keep_report, report_links
    from tasks.windows import TimeWindow

    assert verdict.version and verdict.window_start and verdict.window_end and verdict.drift  # a judged verdict
    spec = load_spec(verdict.model)
    mlflow_ui = mlflow_ui_url(platform.settings)  # a malformed MODELOPS_MLFLOW_UI_URL stops before any change
    governed = require_governed(platform, verdict.model, verdict.version)
    window = TimeWindow(verdict.window_start, verdict.window_end)
    reference = drift_reference(platform, spec, governed, window, use_loader=False)
    current = logged_predictions(platform, verdict.model, verdict.version, *window)
    _, snapshot = run_drift_report(reference.sample(platform, spec, governed), current, spec.data.features,
                                   spec.monitoring.drift)
    path = save_report(snapshot, platform.settings.reports_dir / spec.name / f"v{governed.version}" /
                       f"drift-{window.start:%Y%m%d}-{window.end:%Y%m%d}.html")
    report = MonitorReport(spec.name, governed.version, window.start, window.end, verdict.rows,
                           {"drift": drift_check(verdict.drift, spec, reference.description)}, drift=verdict.drift,
                           report_path=str(path))
    kept = keep_report(platform, spec.name, governed.version, str(path),
                       f"sweep-{window.start:%Y%m%d}-{window.end:%Y%m%d}")
    announce_verdicts(platform, spec, report, occasion, kept.uri if kept else None)
    process_alerts(platform, spec, report, report_links(mlflow_ui, kept))
    return str(path)


follow_up_breach_task = as_task(follow_up_breach)


def verdict_of(verdict: SweepVerdict) -> str:
    """What the sweep counts: the drift verdict, skipped (not judgeable) or error (could not be judged)."""
    if verdict.drift is not None:
        return verdict.drift.verdict
    return "error" if verdict.note else SKIPPED


def count_verdicts(verdicts: list[SweepVerdict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict_of(verdict)] = counts.get(verdict_of(verdict), 0) + 1
    return counts


def publish_sweep_table(verdicts: list[SweepVerdict], limit: int = 200) -> None:
    """The Prefect UI's table of the sweep: the most drifted models first, with why a model was not judged."""
    from prefect.artifacts import create_table_artifact

    ranked = sorted(verdicts, key=lambda v: -(v.drift.share if v.drift else 0))[:limit]
    create_table_artifact(key="sweep-drift", description=f"Drift verdicts of {len(verdicts)} models",
                          table=[{"model": v.model, "version": v.version, "rows": v.rows,
                                  "drifted_share": v.drift.share if v.drift else None, "verdict": verdict_of(v),
                                  "note": v.skipped or v.note} for v in ranked])
