"""Approval judges a version by the risk tier it was registered under, or a stricter one: editing the spec down
after registration does not skip the people the version's tier asked for."""

from __future__ import annotations

from pathlib import Path

from modelops.approval_policy import effective_policy
from modelops.spec import RiskTier
from modelops.store.audit_chain import AuditFact
from tasks.decisions import approval_spec
from tests.tasks.test_signed_votes import version


def registered(tier: str) -> AuditFact:
    return AuditFact(actor="person:dana", stage="register", action="train-and-register", model="flight-delay",
                     version="1", outcome="registered", evidence={"risk_tier": tier}, event=None, flow_run_id=None)


def test_a_spec_lowered_after_registration_still_needs_people(state_home: Path) -> None:
    from modelops.platform import get_platform

    platform = get_platform()
    platform.store.record(registered("high"))
    mv = version("1")
    lowered = mv.spec.model_copy(update={"risk_tier": RiskTier.low})
    assert effective_policy(lowered).human_approvals.count == 0  # what the edit alone would have done
    judged = approval_spec(platform, type(mv)(lowered, mv.governed))
    assert judged.risk_tier == RiskTier.high and effective_policy(judged).human_approvals.count == 1


def test_a_tier_raised_after_registration_is_honoured(state_home: Path) -> None:
    from modelops.platform import get_platform

    platform = get_platform()
    platform.store.record(registered("low"))
    mv = version("1")
    raised = mv.spec.model_copy(update={"risk_tier": RiskTier.high})
    assert approval_spec(platform, type(mv)(raised, mv.governed)).risk_tier == RiskTier.high
