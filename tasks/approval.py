"""Approval policy: rules over a version's recorded evidence, by its risk tier's policy (configs/approval-policies.yaml)
tightened by the spec's approval section; and, where people must approve, how their votes add up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from modelops.approval_policy import TierPolicy, effective_policy
from modelops.lifecycle import ApprovalStatus
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion, Vote
from modelops.fairness_evidence import measured_gaps
from tasks.metrics import limit_reason, meets_limit

APPROVED, REJECTED, PENDING = ApprovalStatus.approved, ApprovalStatus.rejected, ApprovalStatus.pending


@dataclass(frozen=True)
class Decision:
    status: str
    reasons: list[str] = field(default_factory=list)
    approvals_needed: int = 0  # people who must still approve (pending only)


@dataclass(frozen=True)
class Evidence:
    """What validation and per-model checks recorded of a version besides its gate verdicts (the governance
    store's audit records of it)."""

    data_quality_share: float | None = None
    fairness: dict[str, Any] | None = None  # per protected attribute: metric, value, limit
    failed_segment_checks: list[str] = field(default_factory=list)


def _evidence_failures(spec: LifecycleSpec, governed: GovernedVersion, evidence: Evidence,
                       policy: TierPolicy) -> list[str]:
    rules, failures = policy.require, []
    if rules.validation_passed and governed.validation_status != "passed":
        failures.append(f"validation has not passed (validation: {governed.validation_status or 'not run'})")
    if rules.security_scan_passed and governed.security_status != "passed":
        failures.append(f"security scan has not passed (security scan: {governed.security_status or 'not run'})")
    if rules.data_quality_min_share is not None:
        share = evidence.data_quality_share
        if share is None:
            failures.append("data quality was not recorded at validation")
        elif share < rules.data_quality_min_share:
            failures.append(f"data quality: {share:.0%} of expectations met, the policy asks for "
                            f"{rules.data_quality_min_share:.0%}")
    gated = spec.validation.fairness is not None and spec.data.protected_attributes
    if rules.fairness_passed and gated:
        if not evidence.fairness:
            failures.append("fairness was not measured at validation, and the spec lists protected attributes")
        for attribute, metrics in sorted((evidence.fairness or {}).items()):
            for metric, found in measured_gaps(metrics):
                value, limit = found.get("value"), found.get("limit")
                if value is None:
                    failures.append(f"fairness: {metric} on {attribute} could not be computed "
                                    f"({found.get('note') or 'no value recorded'})")
                elif limit is not None and value > limit:
                    failures.append(f"fairness: {metric} on {attribute} is {value:.3f} > limit {limit}")
    if rules.segment_checks_passed:
        failures += evidence.failed_segment_checks
    return failures


def decide_approval(spec: LifecycleSpec, governed: GovernedVersion, lost_comparison: bool = False,
                    evidence: Evidence | None = None, policy: TierPolicy | None = None) -> Decision:
    """Rejected if any rule fails; otherwise approved when the policy needs no people, else pending them. The
    evidence is the governance store's record of the version, never MLflow tags (anyone with MLflow access can
    edit those); `lost_comparison`: a retrain compared this challenger with the champion and kept the champion."""
    if governed.retired:
        return Decision(REJECTED, ["the version is retired"])
    policy = policy or effective_policy(spec)
    failures = _evidence_failures(spec, governed, evidence or Evidence(), policy)
    if lost_comparison:
        failures.append("this retrain's challenger lost the comparison with the champion on recent traffic")
    for metric, limit in policy.min_metrics.items():
        recorded = governed.holdout_metrics.get(metric)
        if recorded is None:
            failures.append(f"holdout {metric} was not recorded")
        elif not meets_limit(metric, recorded, limit):
            failures.append(limit_reason(metric, recorded, limit, "approval"))
    if failures:
        return Decision(REJECTED, failures)
    passed = ["validation passed", "security scan passed",
              *[limit_reason(m, governed.holdout_metrics[m], limit, "approval") for m, limit in policy.min_metrics.items()]]
    needed = policy.human_approvals.count
    if needed:
        roles = ", ".join(policy.human_approvals.roles)
        return Decision(PENDING, [*passed, f"risk tier {spec.risk_tier.value} requires a human approver: {needed} "
                                           f"approval(s) from {roles}"], approvals_needed=needed)
    return Decision(APPROVED, [*passed, f"risk tier {spec.risk_tier.value} is approved automatically by policy"])


def tally(votes: Sequence[Vote], required: int) -> Decision:
    """People's accepted votes: one rejection rejects; `required` approvals by distinct people approve."""
    accepted = [v for v in votes if v.accepted]
    rejection = next((v for v in accepted if v.decision == "reject"), None)
    if rejection is not None:
        return Decision(REJECTED, [f"rejected by {rejection.person}: {rejection.comment or 'no comment'}"])
    approvers = list(dict.fromkeys(v.person for v in accepted if v.decision == "approve"))
    reasons = [f"approved by {person}" + (f": {v.comment}" if (v := next(x for x in accepted if x.person == person
                                                                        and x.decision == "approve")).comment else "")
               for person in approvers]
    if len(approvers) >= required:
        return Decision(APPROVED, reasons)
    return Decision(PENDING, reasons, approvals_needed=required - len(approvers))
