"""sweep: drift verdicts for every model (or those named) in one run, at the cost of the statistics alone;
a breached model gets Evidently's full report, its events and its alerts, like the per-model monitor."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import BaseModel, Field

from flows.parameters import ModelName
from modelops.platform import Platform, get_platform
from modelops.spec import load_all_specs, load_spec
from tasks import as_task
from tasks.alerting import process_alerts
from tasks.integrity import require_governed
from tasks.drift import BREACH, run_drift_report, save_report
from tasks.monitoring import MonitorReport, announce_verdicts, drift_check, reference_sample
from tasks.prediction_log import logged_predictions
from tasks.sweep import PlatformSource, SweepVerdict, store_verdicts, sweep_drift


class Swept(BaseModel):
    models: int
    judged: int
    verdicts: dict[str, int]
    breached: list[str]
    errors: list[str] = Field(default_factory=list)


def follow_up_breach(platform: Platform, verdict: SweepVerdict, occasion: str) -> str:
    """Evidently's report, the breach event (and retrain request) and the alert of one breached model."""
    spec = load_spec(verdict.model)
    governed = require_governed(platform, verdict.model, verdict.version)
    current = logged_predictions(platform, verdict.model, verdict.version, verdict.window_start, verdict.window_end)
    _, snapshot = run_drift_report(reference_sample(platform, spec, governed), current, spec.data.features,
                                   spec.monitoring.drift)
    path = save_report(snapshot, platform.settings.reports_dir / spec.name / f"v{governed.version}" /
                       f"drift-{verdict.window_start:%Y%m%d}-{verdict.window_end:%Y%m%d}.html")
    report = MonitorReport(spec.name, governed.version, verdict.window_start, verdict.window_end, verdict.rows,
                           {"drift": drift_check(verdict.drift, spec)}, drift=verdict.drift, report_path=str(path))
    announce_verdicts(platform, spec, report, occasion)
    process_alerts(platform, spec, report, {"Evidently report": f"file://{path}"})
    return str(path)


follow_up_breach_task = as_task(follow_up_breach)


@flow(name="sweep", log_prints=True)
def sweep(models: list[ModelName] | None = None, chunk_size: Annotated[int, Field(ge=1, le=1000)] = 50) -> Swept:
    """Every model with a configured spec (or `models`): the champion's newest window, judged for drift."""
    from prefect.artifacts import create_table_artifact
    from prefect.context import FlowRunContext

    platform = get_platform()
    names = models or [spec.name for spec in load_all_specs()]
    verdicts = sweep_drift(PlatformSource(platform), names, chunk_size)
    store_verdicts(platform.store, verdicts)
    breached = [v for v in verdicts if v.drift is not None and v.drift.verdict == BREACH]
    context = FlowRunContext.get()
    occasion = f"sweep-{context.flow_run.id}" if context and context.flow_run else "sweep"
    for future in [follow_up_breach_task.submit(platform, v, occasion) for v in breached]:
        future.result()
    counts: dict[str, int] = {}
    for verdict in verdicts:
        key = verdict.drift.verdict if verdict.drift else ("error" if verdict.note else "skipped")
        counts[key] = counts.get(key, 0) + 1
    errors = [f"{v.model}: {v.note}" for v in verdicts if v.note]
    if errors:
        print(f"{len(errors)} model(s) could not be judged: {'; '.join(errors[:10])}")
    create_table_artifact(key="sweep-drift", description=f"Drift verdicts of {len(verdicts)} models",
                          table=[{"model": v.model, "version": v.version, "rows": v.rows,
                                  "drifted_share": v.drift.share if v.drift else None,
                                  "verdict": v.drift.verdict if v.drift else "skipped"}
                                 for v in sorted(verdicts, key=lambda v: -(v.drift.share if v.drift else 0))[:200]])
    print(f"swept {len(names)} models: {counts}; breached: {[v.model for v in breached]}")
    return Swept(models=len(names), judged=sum(v.drift is not None for v in verdicts), verdicts=counts,
                 breached=[v.model for v in breached], errors=errors)
