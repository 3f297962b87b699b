"""Recording a stage's outcome: one audit row in the governance store and one Prefect event."""

from __future__ import annotations

from typing import Any

from modelops.events import emit_model_event
from modelops.platform import current_actor, get_platform
from modelops.tasks import as_task


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def record_stage(*, stage: str, action: str, model: str, version: str | None, outcome: str,
                 evidence: dict[str, Any], event: str | None, actor: str | None = None,
                 labels: dict[str, str] | None = None) -> bool:
    """Audit the stage, then emit its event. A repeated identical outcome is neither re-audited nor re-emitted,
    so re-running a stage does not restart the stages its event triggers."""
    written = get_platform().store.record_audit(
        actor=actor or current_actor(), stage=stage, action=action, model=model, version=version, outcome=outcome,
        evidence=evidence, event=event, flow_run_id=_flow_run_id())
    if written and event:
        emit_model_event(event, model, version, {"outcome": outcome, "stage": stage}, labels)
    return written


record_stage_task = as_task(record_stage)
