"""Approval policy: rules over a version's recorded evidence, by the spec's approval section."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelops.catalog import TAG_SECURITY, TAG_VALIDATION, VersionInfo
from modelops.spec import LifecycleSpec

APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"


@dataclass(frozen=True)
class Decision:
    status: str
    reasons: list[str] = field(default_factory=list)


def decide_approval(spec: LifecycleSpec, info: VersionInfo) -> Decision:
    """Rejected if any rule fails; otherwise approved when the risk tier allows it, else pending a human."""
    if info.retired:
        return Decision(REJECTED, ["the version is retired"])
    failures = []
    if spec.approval.require_validation_passed and info.tags.get(TAG_VALIDATION) != "passed":
        failures.append(f"validation has not passed (validation_status={info.tags.get(TAG_VALIDATION, 'not run')})")
    if info.tags.get(TAG_SECURITY) != "passed":
        failures.append(f"security scan has not passed (security_scan={info.tags.get(TAG_SECURITY, 'not run')})")
    for metric, floor in spec.approval.min_metrics.items():
        recorded = info.tags.get(f"holdout_{metric}")
        if recorded is None:
            failures.append(f"holdout {metric} was not recorded")
        elif float(recorded) < floor:
            failures.append(f"holdout {metric} {float(recorded):.4f} is below the approval floor {floor}")
    if failures:
        return Decision(REJECTED, failures)
    passed = ["validation passed", "security scan passed",
              *[f"holdout {m} {float(info.tags[f'holdout_{m}']):.4f} >= {f}" for m, f in spec.approval.min_metrics.items()]]
    if spec.risk_tier not in spec.approval.automatic_for_tiers:
        return Decision(PENDING, [*passed, f"risk tier {spec.risk_tier.value} requires a human approver"])
    return Decision(APPROVED, [*passed, f"risk tier {spec.risk_tier.value} is approved automatically by policy"])
