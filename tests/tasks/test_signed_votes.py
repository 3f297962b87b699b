"""People's votes on an approval request, judged and recorded in a real governance store: a vote is a signature
of exactly one decision (no replay on another version, no flipped decision, no second count), it must arrive
while the request is open, a comment is plain text, and only what the hash-chained records say counts. The
version is the store's record of a validated flight-delay version (targeted unit tests: no training here)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from modelops.approval_policy import HumanApprovals
from modelops.approval_signing import sign
from modelops.errors import ApprovalClosedError
from modelops.spec import load_spec
from modelops.store.audit_chain import AuditFact
from modelops.store.records import GovernedVersion
from tasks.context import ModelVersion
from tasks.human_approval import Submission, counted_votes, record_submission, statement_for

RULE = HumanApprovals(count=2)


def version(number: str) -> ModelVersion:
    now = datetime.now(timezone.utc)
    return ModelVersion(load_spec("flight-delay"), GovernedVersion(
        model="flight-delay", version=number, source="trained", fingerprint="f" + number, chain="continue",
        content_hash=number * 64, manifest={}, registered_at=now, registered_by="person:dana",
        security_status="passed", validation_status="passed", holdout_metrics={"roc_auc": 0.64},
        validation_run_id="r" + number, retired_at=None, retired_reason=None))


@dataclass
class Team:
    store: Any
    tokens: dict[str, str]


@pytest.fixture
def team(state_home: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    from modelops.people import add_person, issue_approver_token
    from modelops.platform import get_platform

    platform = get_platform()
    monkeypatch.setenv("MODELOPS_USER", "alice")
    add_person(platform, "alice", ["modelops_engineer"])
    for person, roles in (("bob", ["approver"]), ("erin", ["approver"]), ("dana", ["data_scientist", "approver"])):
        add_person(platform, person, roles)
    tokens = {}
    for person in ("bob", "erin", "dana"):
        monkeypatch.setenv("MODELOPS_USER", person)
        tokens[person] = issue_approver_token(platform, person)[1]
    monkeypatch.delenv("MODELOPS_USER")
    return Team(platform.store, tokens)


def ask(team: Team, mv: ModelVersion, deadline: datetime | None = None) -> None:
    """The version waits for people, as the approve flow records it."""
    team.store.record(AuditFact(actor="service:modelops", stage="approve", action="request-approval", model=mv.model,
                                version=mv.version, outcome="pending", evidence={}, event=None, flow_run_id=None),
                      team.store.open_approval_request(
                          model=mv.model, version=mv.version, required=RULE.count, roles=["approver"],
                          deadline=deadline or datetime.now(timezone.utc) + timedelta(hours=1), flow_run_id=None))


def code(team: Team, person: str, mv: ModelVersion, decision: str = "approve", comment: str = "ok",
         now: datetime | None = None) -> str:
    request = team.store.approval_request(mv.model, mv.version)
    signed = sign(team.tokens[person], statement_for(mv, request, decision, comment), now)
    assert signed is not None
    return signed


def submit(team: Team, mv: ModelVersion, approval_code: str | None, decision: str = "approve",
           comment: str = "ok") -> tuple[bool, str | None]:
    from modelops.platform import get_platform

    return record_submission(get_platform(), mv, Submission(decision=decision, comment=comment, code=approval_code,
                                                            via="cli"), RULE)


def refusals(team: Team, mv: ModelVersion) -> list[Any]:
    return [r for r in team.store.audit_trail(mv.model) if r.version == mv.version and r.action == "refused-vote"]


def test_a_signed_approval_counts_and_its_signature_is_kept_for_auditors(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    signed = code(team, "bob", mv)
    assert submit(team, mv, signed) == (True, None)
    request = team.store.approval_request(mv.model, mv.version)
    assert [v.person for v in counted_votes(_platform(), mv, request, RULE)] == ["bob"]
    [vote] = [r for r in team.store.audit_trail(mv.model) if r.action == "human-vote"]
    assert vote.actor == "person:bob" and vote.evidence["approval_code"] == signed


def test_an_approval_code_copied_from_one_version_is_refused_on_another(team: Team) -> None:
    first, second = version("1"), version("2")
    ask(team, first)
    ask(team, second)
    copied = code(team, "bob", first)
    counted, refusal = submit(team, second, copied)
    assert not counted and refusal.startswith("the approval code is no signature of this decision by approver token")
    assert [r.actor for r in refusals(team, second)] == ["unknown:no-valid-approver-token"]
    assert counted_votes(_platform(), second, team.store.approval_request("flight-delay", "2"), RULE) == []


def test_an_approval_reposted_as_a_rejection_is_refused(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    counted, refusal = submit(team, mv, code(team, "bob", mv, "approve"), decision="reject")
    assert not counted and "no signature of this decision" in refusal


def test_a_comment_changed_after_signing_is_refused(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    counted, refusal = submit(team, mv, code(team, "bob", mv, comment="checked the holdout"), comment="rubber stamp")
    assert not counted and "no signature of this decision" in refusal


def test_the_same_code_submitted_twice_counts_once(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    signed = code(team, "bob", mv)
    assert submit(team, mv, signed) == (True, None)
    assert submit(team, mv, signed) == (False, "bob has decided on flight-delay v1 already")


def test_a_token_pasted_instead_of_a_code_is_refused_and_not_kept(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    counted, refusal = submit(team, mv, team.tokens["bob"])
    assert not counted and refusal.startswith("that is an approver token, not an approval code: the token is exposed")
    [refused] = refusals(team, mv)
    assert team.tokens["bob"] not in str(refused.evidence) + str(team.store.votes(mv.model, mv.version))


def test_a_code_held_back_past_its_lifetime_is_refused(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    held = code(team, "bob", mv, now=datetime.now(timezone.utc) - timedelta(minutes=31))
    counted, refusal = submit(team, mv, held)
    assert not counted and refusal.startswith("the approval code was signed 31 minutes ago")
    assert submit(team, mv, code(team, "bob", mv)) == (True, None)  # signed now, the same decision counts


def test_another_spelling_of_a_valid_code_is_refused(team: Team) -> None:
    from modelops.approval_signing import parse_code

    mv = version("1")
    ask(team, mv)
    signed = code(team, "bob", mv)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signed[-1])
    respelled = signed[:-1] + alphabet[last ^ 1]  # the last character's spare bits: the same 64 bytes
    assert parse_code(respelled) is None and parse_code(signed) is not None
    counted, refusal = submit(team, mv, respelled)
    assert not counted and refusal.startswith("the approval code is malformed")


def test_a_comment_holding_a_token_is_refused_and_kept_redacted(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    comment = f"my token is {team.tokens['erin']}"
    counted, refusal = submit(team, mv, code(team, "bob", mv, comment=comment), comment=comment)
    assert not counted and refusal.startswith("the comment holds an approver token")
    [refused] = refusals(team, mv)
    secret = team.tokens["erin"].rsplit("_", 1)[1]
    assert secret not in str(refused.evidence) + str(team.store.votes(mv.model, mv.version))
    assert "[redacted]" in refused.evidence["comment"]


def test_an_approval_is_not_closed_over_a_rejection_recorded_meanwhile(team: Team) -> None:
    """Bob's approval was counted; erin's rejection lands before the approval is recorded: closing the request as
    approved is refused in its transaction, so the votes are counted again."""
    mv = version("1")
    ask(team, mv)
    assert submit(team, mv, code(team, "bob", mv)) == (True, None)
    assert submit(team, mv, code(team, "erin", mv, "reject"), decision="reject") == (True, None)
    decided = AuditFact(actor="person:bob", stage="approve", action="human-decision", model=mv.model,
                        version=mv.version, outcome="approved", evidence={}, event=None, flow_run_id=None)
    with pytest.raises(ApprovalClosedError, match="a rejection of flight-delay v1 was recorded"):
        team.store.record(decided, team.store.close_approval_request(mv.model, mv.version, "approved"))
    assert team.store.approval_request(mv.model, mv.version).open


def test_votes_cast_in_time_decide_even_when_counted_after_the_deadline(team: Team) -> None:
    mv = version("1")
    ask(team, mv, deadline=datetime.now(timezone.utc) + timedelta(seconds=2))
    assert submit(team, mv, code(team, "bob", mv)) == (True, None)
    request = team.store.approval_request(mv.model, mv.version)
    time.sleep(max(0.0, (request.deadline - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    assert datetime.now(timezone.utc) > request.deadline
    decided = AuditFact(actor="person:bob", stage="approve", action="human-decision", model=mv.model,
                        version=mv.version, outcome="approved", evidence={}, event=None, flow_run_id=None)
    team.store.record(decided, team.store.close_approval_request(mv.model, mv.version, "approved"))
    assert team.store.approval_request(mv.model, mv.version).outcome == "approved"


def test_a_vote_after_the_deadline_is_refused_and_recorded(team: Team) -> None:
    mv = version("1")
    ask(team, mv, deadline=datetime.now(timezone.utc) + timedelta(seconds=2))
    signed = code(team, "bob", mv)
    request = team.store.approval_request(mv.model, mv.version)
    time.sleep(max(0.0, (request.deadline - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    assert datetime.now(timezone.utc) > request.deadline  # the deadline is the event the vote comes after
    counted, refusal = submit(team, mv, signed)
    assert not counted and refusal.startswith("the approval deadline passed")
    assert len(refusals(team, mv)) == 1


def test_a_vote_on_a_closed_request_is_refused_in_the_voting_transaction(team: Team) -> None:
    """The check that judging did is made again where the vote is written: a request closed in between (by the
    deadline run) turns the vote into a recorded refusal."""
    mv = version("1")
    ask(team, mv)
    team.store.record(AuditFact(actor="policy:approval-timeout", stage="approve", action="approval-timeout",
                                model=mv.model, version=mv.version, outcome="rejected", evidence={}, event=None,
                                flow_run_id=None),
                      team.store.close_approval_request(mv.model, mv.version, "timed-out"))
    with pytest.raises(ApprovalClosedError, match="was decided already \\(timed-out"):
        team.store.record(AuditFact(actor="person:bob", stage="approve", action="human-vote", model=mv.model,
                                    version=mv.version, outcome="approve", evidence={}, event=None, flow_run_id=None),
                          team.store.add_vote(model=mv.model, version=mv.version, person="bob", decision="approve",
                                              comment="", accepted=True, refusal=None, via="cli", flow_run_id=None,
                                              input_key=None))
    assert team.store.votes(mv.model, mv.version) == []


def test_a_decided_request_cannot_be_closed_again(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    close = AuditFact(actor="person:bob", stage="approve", action="human-decision", model=mv.model,
                      version=mv.version, outcome="approved", evidence={}, event=None, flow_run_id=None)
    team.store.record(close, team.store.close_approval_request(mv.model, mv.version, "approved"))
    with pytest.raises(ApprovalClosedError, match="was decided already \\(approved"):
        team.store.record(close, team.store.close_approval_request(mv.model, mv.version, "timed-out"))
    assert team.store.approval_request(mv.model, mv.version).outcome == "approved"


def test_a_comment_with_control_characters_is_refused_and_recorded_printably(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    comment = "fine\x00; DROP"
    counted, refusal = submit(team, mv, code(team, "bob", mv, comment=comment), comment=comment)
    assert not counted and refusal == "the comment holds control characters: write it as plain text"
    [refused] = refusals(team, mv)
    assert refused.actor == "person:bob" and refused.evidence["comment"] == "fine\\x00; DROP"


def test_a_vote_row_written_around_the_platform_counts_for_nothing(team: Team) -> None:
    from modelops.store.db import session_scope
    from modelops.store.schema import ApprovalVote

    mv = version("1")
    ask(team, mv)
    with session_scope(team.store.url) as session:
        session.add(ApprovalVote(model=mv.model, version=mv.version, person="erin", decision="approve", comment="",
                                 accepted=True, refusal=None, via="cli", flow_run_id=None, input_key=None,
                                 at=datetime.now(timezone.utc)))
    assert submit(team, mv, code(team, "bob", mv)) == (True, None)
    request = team.store.approval_request(mv.model, mv.version)
    assert [v.person for v in counted_votes(_platform(), mv, request, RULE)] == ["bob"]


def test_a_vote_does_not_outlive_the_voters_approver_role(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.people import revoke_role

    mv = version("1")
    ask(team, mv)
    assert submit(team, mv, code(team, "bob", mv)) == (True, None)
    request = team.store.approval_request(mv.model, mv.version)
    assert [v.person for v in counted_votes(_platform(), mv, request, RULE)] == ["bob"]
    monkeypatch.setenv("MODELOPS_USER", "alice")
    revoke_role(_platform(), "bob", "approver")
    assert counted_votes(_platform(), mv, request, RULE) == []


def test_whoever_registered_the_version_cannot_sign_its_approval(team: Team) -> None:
    mv = version("1")
    ask(team, mv)
    counted, refusal = submit(team, mv, code(team, "dana", mv))
    assert not counted and refusal == "four eyes: dana registered or retrained flight-delay v1 and cannot approve it"


def _platform() -> Any:
    from modelops.platform import get_platform

    return get_platform()
