"""monitor: judge a window of the champion's prediction log (drift, data quality, performance, service
health); alert on breaches and, where the spec says so, ask for retraining by event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from prefect import flow
from pydantic import BaseModel, Field

from modelops.lineage_events import STAGE_HOOKS
from modelops.catalog import CHAMPION
from flows.deploy import Settled, settle_challenger
from flows.dispatch import hand_over
from flows.parameters import ModelName
from modelops.lifecycle import Stage
from modelops.platform import Platform, get_platform
from modelops.spec import LifecycleSpec, load_spec
from modelops.mlflow_ui import mlflow_ui_url
from modelops.store.records import as_utc
from tasks.alerting import process_alerts_task
from tasks.plots import PLOTTED_RUNS, history_png, markdown_image
from tasks.report_artifacts import REPORT_LINK, keep_report_task, report_line, report_links
from tasks.integrity import report_alias_findings, require_governed
from tasks.verdicts import SKIPPED
from tasks.windows import default_window
from tasks.monitoring import (
    MonitorReport, announce_verdicts, markdown_summary, monitor_window_task,
)


class Monitored(BaseModel):
    model: str
    version: str | None
    verdict: str
    rows: int = 0
    checks: dict[str, str] = Field(default_factory=dict)
    drift_share: float | None = None
    drift_verdict: str | None = None
    drifted_columns: list[str] = Field(default_factory=list)
    performance_metric: str | None = None
    performance_value: float | None = None
    performance_verdict: str | None = None
    report_path: str | None = None  # where the monitor wrote Evidently's report (for the CLI)
    report_artifact: str | None = None  # where MLflow keeps it: runs:/<run id>/<path>
    report_url: str | None = None  # its page in the MLflow UI, when the UI's address is known
    events: list[str] = Field(default_factory=list)
    retrain_requested: bool = False
    alerts_sent: list[str] = Field(default_factory=list)
    alerts_failed: list[str] = Field(default_factory=list)
    values: list[dict[str, Any]] = Field(default_factory=list)  # check, metric, value, limit, verdict of each point
    challenger: Settled | None = None  # a serving challenger compared with the champion after the verdicts


def _links(report_page: dict[str, str]) -> dict[str, str]:
    """Links an alert carries: the flow run in the Prefect UI and the report's page in the MLflow UI."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_UI_URL

    links = {}
    context = FlowRunContext.get()
    ui = PREFECT_UI_URL.value()
    if ui and context and context.flow_run:
        links["Prefect run"] = f"{ui}/runs/flow-run/{context.flow_run.id}"
    return {**links, **report_page}


def _publish(platform: Platform, spec: LifecycleSpec, report: MonitorReport, report_line: str | None) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    history = [(f"{r.run_at:%m-%d %H:%M}", r.verdict) for r in platform.store.recent_monitoring(report.model, 8)]
    png = history_png(platform.store.monitoring_history(report.model, limit=PLOTTED_RUNS), spec)
    plot = markdown_image(png, f"{report.model}: drift share, {spec.monitoring.performance.metric} and latency over "
                               "time, with their breach limits") if png else None
    create_markdown_artifact(key=f"monitor-{report.model}", markdown=markdown_summary(
        report, history, report_line, plot), description=f"{report.model} v{report.version}: "
                                                                         f"{report.verdict}")
    create_table_artifact(key=f"monitor-{report.model}-values", description="Monitored values against their limits",
                          table=monitored_values(report))


@flow(name="monitor", log_prints=True, **STAGE_HOOKS)
def monitor(model: ModelName, window_end: datetime | None = None,
            window_days: Annotated[int, Field(ge=1, le=366)] | None = None, full_report: bool = True) -> Monitored:
    """Window: `window_days` (default: the spec's) ending at `window_end` (default: the newest prediction).
    Verdicts come from the drift statistics; Evidently's full HTML report is kept for every run unless
    `full_report` is off (then only on a breach). The sweep renders it only where a model breaches."""
    handed, result = hand_over(Stage.monitor, dict(model=model, window_end=window_end, window_days=window_days,
                               full_report=full_report))
    return result if handed else standard_monitor(load_spec(model), window_end, window_days, full_report)


def monitored_values(report: MonitorReport) -> list[dict[str, Any]]:
    """Each monitored value against its limit (drift per column left out: the drift share stands for them)."""
    return [{"check": p.check, "metric": p.metric, "value": p.value, "limit": p.threshold, "verdict": p.verdict}
            for p in report.points() if p.check != "drift-column"]


def standard_monitor(spec: LifecycleSpec, window_end: datetime | None, window_days: int | None,
                     full_report: bool) -> Monitored:
    model = spec.name
    platform = get_platform()
    # Before any state change: a malformed MODELOPS_MLFLOW_UI_URL stops the run here, not half-way.
    mlflow_ui = mlflow_ui_url(platform.settings)
    # The store decides which version serves; an MLflow alias that says otherwise is a finding, not a reason.
    report_alias_findings(platform, spec, "monitoring")
    version = platform.store.serving_version(spec.name, CHAMPION)
    window_end = as_utc(window_end) if window_end is not None else None
    window = default_window(platform, spec, version, window_end, window_days) if version else None
    if version is None or window is None:
        print(f"{model}: nothing to monitor (no champion or no logged predictions)")
        return Monitored(model=model, version=version, verdict=SKIPPED)
    governed = require_governed(platform, spec.name, version)
    report = monitor_window_task(platform, spec, governed, *window, full_report=full_report)
    run_id = platform.store.record_monitoring_run(model=spec.name, version=version, window_start=report.window_start,
                                         window_end=report.window_end, rows=report.rows, verdict=report.verdict,
                                         report_path=report.report_path, points=report.points())
    try:
        kept = keep_report_task(platform, spec.name, version, report.report_path, f"run-{run_id}")
    except Exception as exc:  # noqa: BLE001 - MLflow unreachable: the verdicts, events and alerts must still go out
        print(f"{model}: the Evidently report could not be kept in MLflow ({type(exc).__name__}: {exc}); it stays "
              "in the state directory (`modelops monitor` names it); the artifact and alerts go out without its link")
        kept = None
    report_page = report_links(mlflow_ui, kept)
    _publish(platform, spec, report, report_line(kept, report_page.get(REPORT_LINK)))
    emitted, retrain_requested = announce_verdicts(platform, spec, report, f"monitoring-run-{run_id}",
                                                   kept.uri if kept else None)
    alerts = process_alerts_task(platform, spec, report, _links(report_page))
    if alerts.failed:
        print(f"{model}: {len(alerts.failed)} alert(s) not delivered (recorded): {'; '.join(alerts.failed)}")
    print(f"{model} v{version}: {report.verdict} over {report.rows} predictions: "
          + "; ".join(f"{name} {c.verdict}" for name, c in report.checks.items()))
    settled = settle_challenger(spec)
    perf = report.performance
    return Monitored(challenger=settled, model=model, version=version, verdict=report.verdict, rows=report.rows,
                     checks={name: c.verdict for name, c in report.checks.items()},
                     drift_share=report.drift.share if report.drift else None,
                     drift_verdict=report.checks["drift"].verdict, drifted_columns=report.drift.drifted_columns
                     if report.drift else [], performance_metric=perf.metric if perf else None,
                     performance_value=perf.value if perf else None,
                     performance_verdict=report.checks["performance"].verdict, report_path=report.report_path,
                     report_artifact=kept.uri if kept else None, report_url=report_page.get(REPORT_LINK),
                     events=emitted, retrain_requested=retrain_requested, alerts_sent=alerts.sent + alerts.recovered,
                     alerts_failed=alerts.failed, values=monitored_values(report))
