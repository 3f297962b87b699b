"""Approval policy: rules over a version's recorded evidence, by the spec's approval section."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelops.lifecycle import ApprovalStatus
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion
from tasks.metrics import limit_reason, meets_limit

APPROVED, REJECTED, PENDING = ApprovalStatus.approved, ApprovalStatus.rejected, ApprovalStatus.pending


@dataclass(frozen=True)
class Decision:
    status: str
    reasons: list[str] = field(default_factory=list)


def decide_approval(spec: LifecycleSpec, governed: GovernedVersion, lost_comparison: bool = False) -> Decision:
    """Rejected if any rule fails; otherwise approved when the risk tier allows it, else pending a human. The
    evidence is the governance store's record of the version, never MLflow tags (anyone with MLflow access can
    edit those); `lost_comparison`: a retrain compared this challenger with the champion and kept the champion."""
    if governed.retired:
        return Decision(REJECTED, ["the version is retired"])
    failures = []
    if spec.approval.require_validation_passed and governed.validation_status != "passed":
        failures.append(f"validation has not passed (validation: {governed.validation_status or 'not run'})")
    if governed.security_status != "passed":
        failures.append(f"security scan has not passed (security scan: {governed.security_status or 'not run'})")
    if lost_comparison:
        failures.append("this retrain's challenger lost the comparison with the champion on recent traffic")
    for metric, limit in spec.approval.min_metrics.items():
        recorded = governed.holdout_metrics.get(metric)
        if recorded is None:
            failures.append(f"holdout {metric} was not recorded")
        elif not meets_limit(metric, recorded, limit):
            failures.append(limit_reason(metric, recorded, limit, "approval"))
    if failures:
        return Decision(REJECTED, failures)
    passed = ["validation passed", "security scan passed",
              *[limit_reason(m, governed.holdout_metrics[m], limit, "approval")
                for m, limit in spec.approval.min_metrics.items()]]
    if spec.risk_tier not in spec.approval.automatic_for_tiers:
        return Decision(PENDING, [*passed, f"risk tier {spec.risk_tier.value} requires a human approver"])
    return Decision(APPROVED, [*passed, f"risk tier {spec.risk_tier.value} is approved automatically by policy"])
