"""approve: apply the spec's approval policy to a validated version: approved, rejected, or pending a human."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lineage_events import STAGE_HOOKS
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.platform import get_platform
from tasks.approval import Decision
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import apply_approval_policy_task, record_approval_task
from tasks.integrity import check_pinned_files_task


class ApprovalOutcome(BaseModel):
    model: str
    version: str
    status: str  # an ApprovalStatus
    reasons: list[str]


@flow(name="approve", log_prints=True, **STAGE_HOOKS)
def approve(model: ModelName, version: Version) -> ApprovalOutcome:
    handed, result = hand_over(Stage.approve, dict(model=model, version=version))
    return result if handed else standard_approve(resolve_model_version(model, version))


def standard_approve(mv: ModelVersion, extra: Decision | None = None) -> ApprovalOutcome:
    """The standard approval: files checked against their pin, the policy applied, the decision recorded.
    `extra`: a per-model flow's own finding; a rejection there rejects the version with its reasons added."""
    platform = get_platform()
    if mv.governed.retired:  # a retired version keeps the decision it had; it can never serve again anyway
        return ApprovalOutcome(model=mv.model, version=mv.version, status=ApprovalStatus.rejected,
                               reasons=["the version is retired"])
    # What is approved is the file that was validated: a changed file is refused here (audited and alerted).
    check_pinned_files_task(platform, mv.spec, mv.governed, "approval")
    decision = apply_approval_policy_task(platform, mv)
    if extra is not None and extra.status == ApprovalStatus.rejected:
        failures = [r for r in decision.reasons if decision.status == ApprovalStatus.rejected]
        decision = Decision(ApprovalStatus.rejected, [*failures, *extra.reasons])
    status = record_approval_task(platform, mv, decision)
    print(f"{mv.model} v{mv.version}: {status} ({'; '.join(decision.reasons)})")
    return ApprovalOutcome(model=mv.model, version=mv.version, status=status, reasons=decision.reasons)
