"""The state-changing steps of validate, approve, deploy and retire, each a task: the store's change and its audit
record land together (tasks.audit.record_stage), then MLflow's tags and aliases mirror it."""

from __future__ import annotations

from typing import Any

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION, TAG_APPROVAL, TAG_RETIRED_REASON, TAG_SECURITY, TAG_STATE, \
    TAG_VALIDATION, TAG_VALIDATION_RUN
from modelops.lifecycle import (
    REGISTER_ACTIONS, ApprovalStatus, AuditOutcome, ComparisonOutcome, GateStatus, Stage, VersionState,
)
from modelops.spec import LifecycleSpec, RiskTier
from modelops.platform import Platform, current_actor
from modelops.store.records import AuditEntry, Change, chained
from tasks import as_task
from tasks.approval import Decision, Evidence, decide_approval
from tasks.audit import record_stage
from tasks.context import ModelVersion
from tasks.integrity import mirror_serving
from tasks.validation import ValidationReport

APPROVAL_EVENTS = {ApprovalStatus.approved: events.APPROVED, ApprovalStatus.rejected: events.REJECTED,
                   ApprovalStatus.pending: events.APPROVAL_PENDING}
APPROVAL_STATES = {ApprovalStatus.approved: VersionState.approved, ApprovalStatus.rejected: VersionState.rejected,
                   ApprovalStatus.pending: VersionState.pending_approval}
POLICY_ACTOR = "policy:approval"


def record_validation(platform: Platform, mv: ModelVersion, report: ValidationReport, run_id: str) -> GateStatus:
    """The verdict and its audit record in the store, then the MLflow tags that mirror it."""
    status = GateStatus.passed if report.passed else GateStatus.failed
    security = GateStatus.passed if report.security.get("passed") else GateStatus.failed
    record_stage(stage=Stage.validate, action="run-gates", model=mv.model, version=mv.version, outcome=status,
                 evidence={"failures": report.failures, "metrics": report.metrics, "validation_run_id": run_id,
                           "security": report.security.get("passed"), "content_hash": mv.governed.content_hash,
                           "data_quality_share": report.data_quality.get("success_share"),
                           "fairness": report.fairness, "onnx": report.onnx or None},
                 event=events.VALIDATED if report.passed else events.VALIDATION_FAILED,
                 labels={events.CHAIN_LABEL: mv.chain},
                 change=platform.store.set_validation(mv.model, mv.version, security=security, status=status,
                                                      metrics=report.metrics, run_id=run_id))
    info = platform.catalog.version(mv.model, mv.version)
    state = VersionState.validated if report.passed else VersionState.validation_failed
    platform.catalog.set_tags(mv.model, mv.version, {TAG_VALIDATION_RUN: run_id, TAG_SECURITY: security,
                                                     **{f"holdout_{k}": f"{v:.6f}" for k, v in report.metrics.items()},
                                                     **info.state_update(state), TAG_VALIDATION: status})
    return status


def revoke_approval(platform: Platform, mv: ModelVersion, failures: list[str]) -> None:
    """A version that fails a fresh validation loses its approval: it can no longer be deployed or score."""
    reasons = [f"re-validation failed: {failure}" for failure in failures]
    record_stage(stage=Stage.approve, action="revoke-approval", model=mv.model, version=mv.version,
                 outcome=ApprovalStatus.rejected, evidence={"reasons": reasons}, actor="policy:validation",
                 event=events.REJECTED, labels={events.CHAIN_LABEL: mv.chain},
                 change=platform.store.set_approval(mv.model, mv.version, ApprovalStatus.rejected, reasons,
                                                    "policy:validation"))
    platform.catalog.set_tags(mv.model, mv.version, {TAG_APPROVAL: ApprovalStatus.rejected})


_TIERS = list(RiskTier)  # low, medium, high: the order of strictness


def approval_spec(platform: Platform, mv: ModelVersion) -> LifecycleSpec:
    """The spec approval judges the version by: its risk tier never below the one recorded when the version was
    registered (for a version registered before that was recorded: at its first approval), so a spec edited down
    to `low` afterwards does not skip the people the version's tier asked for (a tier raised since is honoured)."""
    mine = [r for r in platform.store.audit_trail(mv.model) if r.version == mv.version]
    registered = next((r for r in mine if r.stage == Stage.register and r.action in REGISTER_ACTIONS
                       and "risk_tier" in r.evidence), None)
    first_judged = next((r for r in mine if r.stage == Stage.approve and r.action == "apply-policy"), None)
    recorded = (registered or first_judged).evidence.get("risk_tier") if (registered or first_judged) else None
    if recorded not in _TIERS or _TIERS.index(RiskTier(recorded)) <= _TIERS.index(mv.spec.risk_tier):
        return mv.spec
    return mv.spec.model_copy(update={"risk_tier": RiskTier(recorded)})


def apply_approval_policy(platform: Platform, mv: ModelVersion) -> Decision:
    """The spec's approval policy over the store's evidence, including whether a retrain kept the champion over
    this version (decided afresh each time)."""
    compared = {outcome: platform.store.has_record(mv.model, mv.version, Stage.retrain, "compare-with-champion",
                                                   outcome) for outcome in ComparisonOutcome}
    lost = compared[ComparisonOutcome.champion_kept] and not compared[ComparisonOutcome.challenger_wins]
    return decide_approval(approval_spec(platform, mv), mv.governed, lost_comparison=lost,
                           evidence=recorded_evidence(platform, mv))


def recorded_evidence(platform: Platform, mv: ModelVersion) -> Evidence:
    """The evidence the audit trail holds of this version: its newest validation's data quality and fairness (of
    the validation run the store's verdict names), and the newest outcome of each per-model check."""
    records = [r for r in platform.store.audit_trail(mv.model) if r.version == mv.version]
    validated = next((r for r in reversed(records) if r.stage == Stage.validate and r.action == "run-gates"
                      and r.evidence.get("validation_run_id") == mv.governed.validation_run_id), None)
    newest_checks: dict[str, Any] = {}
    for record in records:
        if record.stage == Stage.approve and record.action == "segment-check":
            newest_checks[record.action] = record
    failed = [reason for r in newest_checks.values() if r.outcome == AuditOutcome.failed
              for reason in r.evidence.get("reasons", [f"{r.action} failed"])]
    evidence = validated.evidence if validated else {}
    return Evidence(data_quality_share=evidence.get("data_quality_share"), fairness=evidence.get("fairness") or None,
                    failed_segment_checks=failed)


def record_approval(platform: Platform, mv: ModelVersion, decision: Decision, actor: str = POLICY_ACTOR,
                    action: str = "apply-policy", also: Change | None = None) -> ApprovalStatus:
    """The decision and its audit record in the store (the same decision again is not re-recorded), with `also`
    in the same transaction, then the MLflow tags that mirror it."""
    status = ApprovalStatus(decision.status)
    change = platform.store.set_approval(mv.model, mv.version, status, decision.reasons, actor)
    record_stage(stage=Stage.approve, action=action, model=mv.model, version=mv.version, outcome=status,
                 evidence={"reasons": decision.reasons, "risk_tier": approval_spec(platform, mv).risk_tier.value,
                           "content_hash": mv.governed.content_hash}, actor=actor,
                 event=APPROVAL_EVENTS[status], labels={events.CHAIN_LABEL: mv.chain},
                 change=chained(change, also) if also else change)
    info = platform.catalog.version(mv.model, mv.version)
    platform.catalog.set_tags(mv.model, mv.version, {TAG_APPROVAL: status, **info.state_update(APPROVAL_STATES[status])})
    return status


def record_check(mv: ModelVersion, stage: Stage, action: str, passed: bool, evidence: dict[str, Any]) -> bool:
    """The audit record of a check a per-model flow adds (no state change, no event); the same outcome of the
    same check is recorded once per version, so re-running the stage does not repeat it."""
    from modelops.platform import get_platform

    outcome = AuditOutcome.passed if passed else AuditOutcome.failed
    if not get_platform().store.has_record(mv.model, mv.version, stage, action, outcome):
        record_stage(stage=stage, action=action, model=mv.model, version=mv.version, outcome=outcome,
                     evidence=evidence, event=None)
    return passed


def record_deployment(platform: Platform, mv: ModelVersion, role: str, reason: str | None = None) -> AuditEntry | None:
    """The deployment record that makes the version serve (None when it already serves in that role); `reason`:
    the person's recorded decision, when one promoted it."""
    return record_stage(stage=Stage.deploy, action=f"serve-as-{role}", model=mv.model, version=mv.version,
                        outcome=AuditOutcome.deployed, evidence={"role": role, "strategy": mv.spec.deploy.strategy,
                                                                 "targets": mv.spec.deploy.targets,
                                                                 **({"decision_reason": reason} if reason else {})},
                        event=events.DEPLOYED,
                        change=platform.store.start_deployment(mv.model, mv.version, role, mv.spec.deploy.strategy,
                                                               current_actor()))


def end_challenger_role(platform: Platform, mv: ModelVersion, role: str) -> None:
    """A challenger promoted to champion stops serving as challenger."""
    if role == CHAMPION and platform.store.serving_version(mv.model, CHALLENGER) == mv.version:
        record_stage(stage=Stage.deploy, action="end-challenger", model=mv.model, version=mv.version,
                     outcome=AuditOutcome.ended, evidence={"reason": "promoted to champion"}, event=None,
                     change=platform.store.end_role(mv.model, CHALLENGER, f"v{mv.version} promoted to champion"))


def retire_version(platform: Platform, mv: ModelVersion, reason: str, aliases: list[str]) -> bool:
    """Retired in the store for good, then its MLflow aliases removed and its state tag set. True if it changed."""
    entry = record_stage(stage=Stage.retire, action="retire-version", model=mv.model, version=mv.version,
                         outcome=AuditOutcome.retired, evidence={"reason": reason, "aliases_removed": aliases},
                         event=events.RETIRED, change=platform.store.retire_version(mv.model, mv.version, reason))
    for alias in aliases:
        platform.catalog.delete_alias(mv.model, alias)
    platform.catalog.set_tags(mv.model, mv.version, {TAG_STATE: VersionState.retired, TAG_RETIRED_REASON: reason})
    return entry is not None


record_validation_task = as_task(record_validation)
revoke_approval_task = as_task(revoke_approval)
apply_approval_policy_task = as_task(apply_approval_policy)
record_approval_task = as_task(record_approval)
record_check_task = as_task(record_check)
record_deployment_task = as_task(record_deployment)
end_challenger_role_task = as_task(end_challenger_role)
mirror_serving_task = as_task(mirror_serving)  # MLflow's aliases follow what the store says serves
retire_version_task = as_task(retire_version)
