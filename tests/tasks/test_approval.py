from __future__ import annotations

from modelops.catalog import VersionInfo
from modelops.spec import RiskTier, load_spec
from modelops.tasks.approval import APPROVED, PENDING, REJECTED, decide_approval


def version(**tags: str) -> VersionInfo:
    return VersionInfo(model="flight-delay", version="1", run_id=None, source="x", tags=tags)


GOOD = {"validation_status": "passed", "security_scan": "passed", "holdout_roc_auc": "0.64"}


def test_a_validated_medium_risk_version_is_approved_by_policy() -> None:
    decision = decide_approval(load_spec("flight-delay"), version(**GOOD))
    assert decision.status == APPROVED
    assert any("approved automatically" in reason for reason in decision.reasons)


def test_failed_validation_or_low_metric_is_rejected_with_reasons() -> None:
    spec = load_spec("flight-delay")
    failed = decide_approval(spec, version(**{**GOOD, "validation_status": "failed"}))
    assert failed.status == REJECTED and "validation has not passed" in failed.reasons[0]
    weak = decide_approval(spec, version(**{**GOOD, "holdout_roc_auc": "0.55"}))
    assert weak.status == REJECTED and "below the approval floor 0.6" in weak.reasons[0]
    retired = decide_approval(spec, version(**{**GOOD, "lifecycle_state": "retired"}))
    assert retired.status == REJECTED


def test_a_high_risk_tier_waits_for_a_human() -> None:
    spec = load_spec("flight-delay").model_copy(update={"risk_tier": RiskTier.high})
    decision = decide_approval(spec, version(**GOOD))
    assert decision.status == PENDING and "requires a human approver" in decision.reasons[-1]
