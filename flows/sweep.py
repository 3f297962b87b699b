"""sweep: drift verdicts for every model (or those named) in one run, at the cost of the statistics alone;
a breached model gets Evidently's full report, its events and its alerts, like the per-model monitor."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import BaseModel, Field

from flows.parameters import ModelName
from modelops.lineage_events import STAGE_HOOKS
from modelops.platform import get_platform
from modelops.spec import load_all_specs
from tasks.sweep import (
    PlatformSource, count_verdicts, follow_up_breach_task, publish_sweep_table, store_verdicts, sweep_drift,
)
from tasks.task_runners import chunk_runner
from tasks.verdicts import BREACH


class Swept(BaseModel):
    models: int
    judged: int
    verdicts: dict[str, int]
    breached: list[str]
    errors: list[str] = Field(default_factory=list)


@flow(name="sweep", log_prints=True, **STAGE_HOOKS)
def sweep(models: list[ModelName] | None = None, chunk_size: Annotated[int, Field(ge=1, le=1000)] = 50) -> Swept:
    """Every model with a configured spec (or `models`): the champion's newest window, judged for drift. The chunks
    run on Dask when MODELOPS_DASK_ADDRESS is set (tasks/task_runners.py)."""
    from prefect.context import FlowRunContext

    from modelops.people import authorize_stage

    authorize_stage("sweep", None)
    platform = get_platform()
    names = models or [spec.name for spec in load_all_specs()]
    verdicts = sweep_drift(PlatformSource(platform), names, chunk_size, chunk_runner())
    store_verdicts(platform.store, verdicts)
    breached = [v for v in verdicts if v.drift is not None and v.drift.verdict == BREACH]
    context = FlowRunContext.get()
    occasion = f"sweep-{context.flow_run.id}" if context and context.flow_run else "sweep"
    for future in [follow_up_breach_task.submit(platform, v, occasion) for v in breached]:
        future.result()
    errors = [f"{v.model}: {v.note}" for v in verdicts if v.note]
    if errors:
        print(f"{len(errors)} model(s) could not be judged: {'; '.join(errors[:10])}")
    publish_sweep_table(verdicts)
    counts = count_verdicts(verdicts)
    print(f"swept {len(names)} models: {counts}; breached: {[v.model for v in breached]}")
    return Swept(models=len(names), judged=sum(v.drift is not None for v in verdicts), verdicts=counts,
                 breached=[v.model for v in breached], errors=errors)
