"""monitor: judge a window of the champion's prediction log for drift and performance; a breach emits the
event that starts retraining."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from prefect import flow
from pydantic import BaseModel, Field

from modelops import events
from modelops.catalog import CHAMPION
from modelops.flows.parameters import ModelName
from modelops.platform import get_platform
from modelops.spec import load_spec
from modelops.tasks.audit import record_stage
from modelops.tasks.drift import BREACH, SKIPPED
from modelops.tasks.monitoring import default_window, markdown_summary, monitor_window_task


class Monitored(BaseModel):
    model: str
    version: str | None
    verdict: str
    rows: int = 0
    drift_share: float | None = None
    drift_verdict: str | None = None
    drifted_columns: list[str] = Field(default_factory=list)
    performance_metric: str | None = None
    performance_value: float | None = None
    performance_verdict: str | None = None
    report_path: str | None = None
    events: list[str] = Field(default_factory=list)


@flow(name="monitor", log_prints=True)
def monitor(model: ModelName, window_end: datetime | None = None,
            window_days: Annotated[int, Field(ge=1, le=366)] | None = None) -> Monitored:
    """Window: `window_days` (default: the spec's) ending at `window_end` (default: the newest prediction)."""
    from prefect.artifacts import create_markdown_artifact

    spec = load_spec(model)
    platform = get_platform()
    version = platform.catalog.version_for_alias(spec.name, CHAMPION)
    if window_end is not None and window_end.tzinfo is None:
        window_end = window_end.replace(tzinfo=timezone.utc)
    window = default_window(platform, spec, version, window_end, window_days) if version else None
    if version is None or window is None:
        print(f"{model}: nothing to monitor (no champion or no logged predictions)")
        return Monitored(model=model, version=version, verdict=SKIPPED)
    info = platform.catalog.version(spec.name, version)
    report = monitor_window_task(platform, spec, info, *window)
    platform.store.record_monitoring_run(model=spec.name, version=version, window_start=report.window_start,
                                         window_end=report.window_end, rows=report.rows, verdict=report.verdict,
                                         report_path=report.report_path, points=report.points())
    create_markdown_artifact(key=f"monitor-{spec.name}", markdown=markdown_summary(report),
                             description=f"{spec.name} v{version}: {report.verdict}")
    emitted = []
    breaches = []
    if report.drift is not None and report.drift.verdict == BREACH:
        breaches.append(events.DRIFT_DETECTED)
    if report.performance.verdict == BREACH:
        breaches.append(events.PERFORMANCE_DEGRADED)
    summary = report.summary()
    for event in breaches or [events.MONITORED]:
        if record_stage(stage="monitor", action="judge-window", model=spec.name, version=version,
                        outcome=report.verdict if event == events.MONITORED else f"breach:{event.rsplit('.', 1)[1]}",
                        evidence={**summary, "report": report.report_path}, event=event):
            emitted.append(event)
    print(f"{model} v{version}: {report.verdict} over {report.rows} predictions "
          f"(drift share {summary['drift']['share'] if report.drift else 'n/a'})")
    return Monitored(model=model, version=version, verdict=report.verdict, rows=report.rows,
                     drift_share=report.drift.share if report.drift else None,
                     drift_verdict=report.drift.verdict if report.drift else None,
                     drifted_columns=report.drift.drifted_columns if report.drift else [],
                     performance_metric=report.performance.metric, performance_value=report.performance.value,
                     performance_verdict=report.performance.verdict, report_path=report.report_path, events=emitted)
