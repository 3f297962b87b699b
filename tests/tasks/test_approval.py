from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from modelops.spec import LifecycleSpec, RiskTier, load_spec
from modelops.store.records import GovernedVersion, Vote
from tasks.approval import APPROVED, PENDING, REJECTED, Evidence, decide_approval, tally

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
# The store's record of a validated version: the only evidence approval reads.
GOOD = GovernedVersion(model="flight-delay", version="1", source="trained", fingerprint="f", chain="continue",
                       content_hash="c" * 64, manifest={}, registered_at=NOW, registered_by="user:a",
                       security_status="passed", validation_status="passed", holdout_metrics={"roc_auc": 0.64},
                       validation_run_id="r", retired_at=None, retired_reason=None)


def test_a_validated_medium_risk_version_is_approved_by_policy() -> None:
    decision = decide_approval(load_spec("flight-delay"), GOOD)
    assert decision.status == APPROVED
    assert any("approved automatically" in reason for reason in decision.reasons)


def test_failed_validation_or_low_metric_is_rejected_with_reasons() -> None:
    spec = load_spec("flight-delay")
    failed = decide_approval(spec, replace(GOOD, validation_status="failed"))
    assert failed.status == REJECTED and "validation has not passed" in failed.reasons[0]
    weak = decide_approval(spec, replace(GOOD, holdout_metrics={"roc_auc": 0.55}))
    assert weak.status == REJECTED and "below the approval floor 0.6" in weak.reasons[0]
    retired = decide_approval(spec, replace(GOOD, retired_at=NOW))
    assert retired.status == REJECTED


def test_a_high_risk_tier_waits_for_a_human() -> None:
    spec = load_spec("flight-delay").model_copy(update={"risk_tier": RiskTier.high})
    decision = decide_approval(spec, GOOD, evidence=Evidence(data_quality_share=0.97))
    assert decision.status == PENDING and "requires a human approver" in decision.reasons[-1]
    assert decision.approvals_needed == 1


def test_a_challenger_that_lost_its_comparison_is_rejected() -> None:
    decision = decide_approval(load_spec("flight-delay"), replace(GOOD, chain="stop"), lost_comparison=True)
    assert decision.status == REJECTED and "lost the comparison" in decision.reasons[0]


def _regressor_with_mae_limit(limit: float):  # type: ignore[no-untyped-def]
    spec = load_spec("bike-demand")
    return spec.model_copy(update={"approval": spec.approval.model_copy(update={"min_metrics": {"mae": limit}})})


def test_an_error_metric_limit_is_a_ceiling_that_rejects_a_worse_model() -> None:
    worse = replace(GOOD, model="bike-demand", holdout_metrics={"mae": 3.5})
    decision = decide_approval(_regressor_with_mae_limit(3), worse)
    assert decision.status == REJECTED
    assert decision.reasons == ["holdout mae 3.5000 is above the approval ceiling 3 (lower is better)"]


def test_an_error_metric_under_its_ceiling_is_approved() -> None:
    better = replace(GOOD, model="bike-demand", holdout_metrics={"mae": 2.5})
    decision = decide_approval(_regressor_with_mae_limit(3), better)
    assert decision.status == APPROVED
    assert "holdout mae 2.5000 <= 3 (lower is better)" in decision.reasons


def test_a_higher_is_better_metric_limit_stays_a_floor() -> None:
    spec = load_spec("flight-delay")
    assert decide_approval(spec, replace(GOOD, holdout_metrics={"roc_auc": 0.61})).status == APPROVED
    weak = decide_approval(spec, replace(GOOD, holdout_metrics={"roc_auc": 0.59}))
    assert weak.reasons == ["holdout roc_auc 0.5900 is below the approval floor 0.6 (higher is better)"]


def _vote(person: str, decision: str, accepted: bool = True, comment: str = "") -> Vote:
    return Vote(person=person, decision=decision, comment=comment, accepted=accepted, refusal=None if accepted else "x",
                via="form", flow_run_id=None, input_key=None, at=NOW)


def test_one_accepted_rejection_rejects_whatever_the_approvals() -> None:
    decision = tally([_vote("bob", "approve"), _vote("erin", "reject", comment="segment JFK too weak")], 1)
    assert decision.status == REJECTED and decision.reasons == ["rejected by erin: segment JFK too weak"]


def test_approvals_count_distinct_people_and_ignore_refused_votes() -> None:
    votes = [_vote("bob", "approve"), _vote("bob", "approve"), _vote("mallory", "approve", accepted=False)]
    decision = tally(votes, 2)
    assert decision.status == PENDING and decision.approvals_needed == 1


def _high_risk() -> LifecycleSpec:
    return load_spec("flight-delay").model_copy(update={"risk_tier": RiskTier.high})


def test_the_high_tier_rejects_a_data_quality_share_below_its_floor() -> None:
    decision = decide_approval(_high_risk(), GOOD, evidence=Evidence(data_quality_share=0.85))
    assert decision.status == REJECTED
    assert decision.reasons == ["data quality: 85% of expectations met, the policy asks for 90%"]


def test_a_fairness_breach_rejects_with_the_metric_in_the_reason() -> None:
    raw = load_spec("flight-delay").model_dump(mode="json", exclude_unset=True)
    raw["data"]["protected_attributes"] = ["origin"]
    raw["validation"]["fairness"] = {"limits": {"demographic_parity_difference": 0.1}}
    spec = LifecycleSpec.model_validate(raw)
    # As validation records it (tasks.bias.bias_evidence): per attribute, per metric.
    fairness = {"origin": {"demographic_parity_difference": {"value": 0.23, "limit": 0.1, "groups": 3, "note": ""}}}
    decision = decide_approval(spec, GOOD, evidence=Evidence(fairness=fairness))
    assert decision.status == REJECTED
    assert decision.reasons == ["fairness: demographic_parity_difference on origin is 0.230 > limit 0.1"]


def test_a_failed_segment_check_rejects_by_policy() -> None:
    reason = "segment check: holdout roc_auc of origin JFK is 0.5100, below the floor 0.55"
    decision = decide_approval(load_spec("flight-delay"), GOOD, evidence=Evidence(failed_segment_checks=[reason]))
    assert decision.status == REJECTED and decision.reasons == [reason]
