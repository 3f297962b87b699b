"""approve: apply the spec's approval policy to a validated version: approved, rejected, or pending a human."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import TAG_APPROVAL
from flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import load_spec
from tasks.approval import APPROVED, PENDING, REJECTED, decide_approval
from tasks.audit import record_stage
from tasks.integrity import check_pinned_files_task, require_governed

_EVENTS = {APPROVED: events.APPROVED, REJECTED: events.REJECTED, PENDING: events.APPROVAL_PENDING}
_STATES = {APPROVED: "approved", REJECTED: "rejected", PENDING: "pending_approval"}


class ApprovalOutcome(BaseModel):
    model: str
    version: str
    status: str
    reasons: list[str]


@flow(name="approve", log_prints=True)
def approve(model: ModelName, version: Version) -> ApprovalOutcome:
    spec = load_spec(model)
    platform = get_platform()
    governed = require_governed(platform, spec.name, version)
    if governed.retired:  # a retired version keeps the decision it had; it can never serve again anyway
        return ApprovalOutcome(model=model, version=version, status=REJECTED, reasons=["the version is retired"])
    # What is approved is the file that was validated: a changed file is refused here (audited and alerted).
    check_pinned_files_task(platform, spec, governed, "approval")
    # Decided afresh each time from the store's evidence; the same decision again is not re-recorded.
    compared = {outcome: platform.store.has_record(spec.name, version, "retrain", "compare-with-champion", outcome)
                for outcome in ("champion-kept", "challenger-wins")}
    decision = decide_approval(spec, governed, lost_comparison=compared["champion-kept"]
                               and not compared["challenger-wins"])
    actor = "policy:approval"
    record_stage(stage="approve", action="apply-policy", model=spec.name, version=version, outcome=decision.status,
                 evidence={"reasons": decision.reasons, "risk_tier": spec.risk_tier.value,
                           "content_hash": governed.content_hash}, actor=actor,
                 event=_EVENTS[decision.status], labels={events.CHAIN_LABEL: governed.chain},
                 change=platform.store.set_approval(spec.name, version, decision.status, decision.reasons, actor))
    info = platform.catalog.version(spec.name, version)
    platform.catalog.set_tags(spec.name, version, {TAG_APPROVAL: decision.status,
                                                   **info.state_update(_STATES[decision.status])})
    print(f"{model} v{version}: {decision.status} ({'; '.join(decision.reasons)})")
    return ApprovalOutcome(model=model, version=version, status=decision.status, reasons=decision.reasons)
