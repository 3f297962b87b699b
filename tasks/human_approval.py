"""People approving a version: the request they are asked (recorded, announced in Slack with the evidence and a link
to the waiting run), the votes they submit (each judged: a signature of exactly this decision by a live approver
token (modelops.approval_signing), the approver role, four eyes, the request still open; every refusal recorded
with its reason), the decision the counted votes add up to, and the timeout that rejects and escalates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field

from modelops.approval_policy import HumanApprovals, load_policies
from modelops.approval_signing import Statement, parse_code
from modelops.credentials import TOKEN
from modelops.errors import ApprovalClosedError
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.people import APPROVER, approval_signer, person_actor
from modelops.platform import Platform
from modelops.store.records import ApprovalRequestInfo, Vote
from tasks import as_task
from tasks.approval import Decision, tally
from tasks.audit import record_stage
from tasks.context import ModelVersion
from tasks.decisions import record_approval

TIMEOUT_ACTOR = "policy:approval-timeout"
NO_TOKEN_ACTOR = "unknown:no-valid-approver-token"
# Form inputs a run accepts before it stops waiting for more (each one refused or counted is recorded).
MAX_INPUTS = 20


# A comment is free text for people, never bytes a database or a terminal chokes on (NUL ends a PostgreSQL text).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TOKEN_TEXT = re.compile(TOKEN.pattern)  # a token anywhere in a text


class ApprovalForm(RunInput):
    """The form the Prefect UI shows on a run waiting for approval."""

    decision: Literal["approve", "reject"] = Field(description="Approve or reject this version.")
    comment: str = Field("", max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
                         description="Why: recorded in the audit trail with your decision.")
    approval_code: str = Field(max_length=200, description=(
        "Your signature of this decision: `modelops approve <model> --version <v> --decision <d> --comment '<the "
        "comment above>' --sign` prints it, with your approver token in MODELOPS_APPROVER_TOKEN. It is good for "
        "this version, decision and comment only; never paste the token itself."))


@dataclass(frozen=True)
class Submission:
    decision: str
    comment: str
    code: str | None  # the approval code: a signature, useless for any other decision
    via: Literal["form", "cli"]
    flow_run_id: str | None = None
    input_key: str | None = None


def statement_for(mv: ModelVersion, request: ApprovalRequestInfo, decision: str, comment: str) -> Statement:
    """What an approver signs to decide on `mv` in answer to `request`."""
    return Statement(model=mv.model, version=mv.version, content_hash=mv.governed.content_hash,
                     request_opened_at=request.opened_at, decision=decision, comment=comment)


def _version_authors(platform: Platform, mv: ModelVersion) -> set[str]:
    """Everyone who registered or retrained this version: four eyes keeps them from approving it."""
    authors = {mv.governed.registered_by}
    for record in platform.store.audit_trail(mv.model):
        if record.stage in (Stage.register, Stage.retrain) and (record.version == mv.version or
                                                                record.evidence.get("challenger") == mv.version):
            authors.add(record.actor)
    return authors


def _role_problem(platform: Platform, person: str, rule: HumanApprovals) -> str | None:
    held = platform.store.person(person)
    roles = set(held.roles) if held else set()
    if APPROVER in roles and roles & set(rule.roles):
        return None
    return (f"{person} may not approve: it needs the approver role"
            + (f" and one of {', '.join(rule.roles)}" if set(rule.roles) != {APPROVER} else "")
            + f"; {person} holds {', '.join(sorted(roles)) or 'none'}")


def counted_votes(platform: Platform, mv: ModelVersion, request: ApprovalRequestInfo,
                  rule: HumanApprovals) -> list[Vote]:
    """The votes that count now, read from the hash-chained audit records (a row written into the votes table
    around the platform counts for nothing): each one's signature verifies again for this request, and its
    person still holds an approving role (a vote does not outlive the role)."""
    votes = []
    for record in platform.store.audit_trail(mv.model):
        if record.version != mv.version or record.stage != Stage.approve or record.action != "human-vote":
            continue
        ev = record.evidence
        statement = statement_for(mv, request, str(ev.get("decision")), str(ev.get("comment", "")))
        person, _ = approval_signer(platform.store, ev.get("approval_code"), statement, live=False)
        if person is None or person_actor(person) != record.actor or _role_problem(platform, person, rule):
            continue
        votes.append(Vote(person=person, decision=statement.decision, comment=statement.comment, accepted=True,
                          refusal=None, via=str(ev.get("via")), flow_run_id=record.flow_run_id,
                          input_key=ev.get("input_key"), at=record.at))
    return votes


def judge(platform: Platform, mv: ModelVersion, submission: Submission, rule: HumanApprovals,
          request: ApprovalRequestInfo | None) -> tuple[str | None, str | None]:
    """(person, None) when the submission counts; (person or None, why not) when it is refused."""
    if request is None or not request.open:
        return None, (f"{mv.model} v{mv.version} has no open approval request"
                      + (f" (decided: {request.outcome})" if request else ""))
    if request.deadline <= datetime.now(timezone.utc):
        return None, f"the approval deadline passed ({request.deadline:%Y-%m-%d %H:%M} UTC)"
    statement = statement_for(mv, request, submission.decision, submission.comment)
    person, problem = approval_signer(platform.store, submission.code, statement)
    if person is None:
        return None, problem
    if CONTROL.search(submission.comment):
        return person, "the comment holds control characters: write it as plain text"
    if TOKEN_TEXT.search(submission.comment):
        return person, ("the comment holds an approver token: it is exposed now (anyone who can read the run's "
                        "input saw it), issue a new one with `modelops people token` and write the comment again")
    if (problem := _role_problem(platform, person, rule)) is not None:
        return person, problem
    if person_actor(person) in _version_authors(platform, mv):
        return person, f"four eyes: {person} registered or retrained {mv.model} v{mv.version} and cannot approve it"
    if any(v.person == person for v in counted_votes(platform, mv, request, rule)):
        return person, f"{person} has decided on {mv.model} v{mv.version} already"
    return person, None


def _printable(text: str) -> str:
    """A refused comment as it can be stored and shown: control characters spelled out, and any approver token
    in it reduced to its public id (the hash-chained record keeps what it is given for good)."""
    redacted = TOKEN_TEXT.sub(lambda m: f"mop_{m.group(1)}_[redacted]", text)
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", redacted)


def record_submission(platform: Platform, mv: ModelVersion, submission: Submission,
                      rule: HumanApprovals) -> tuple[bool, str | None]:
    """Judge the submission and record it (vote row and audit record together); (counted, refusal reason). A form
    input is recorded once: judging it again on a later run of the flow changes nothing. A vote the request
    closed on in the meantime (decided, or its deadline passed) is recorded as refused."""
    request = platform.store.approval_request(mv.model, mv.version)
    person, refusal = judge(platform, mv, submission, rule, request)
    try:
        _record_vote(platform, mv, submission, person, refusal)
    except ApprovalClosedError as closed:
        person, refusal = person, closed.what
        _record_vote(platform, mv, submission, person, refusal)
    return refusal is None, refusal


def record_refusal(platform: Platform, mv: ModelVersion, submission: Submission, reason: str) -> tuple[bool, str]:
    """Record a submission as refused without judging it (it could not be judged or recorded as it came)."""
    _record_vote(platform, mv, submission, None, reason)
    return False, reason


def _record_vote(platform: Platform, mv: ModelVersion, submission: Submission, person: str | None,
                 refusal: str | None) -> None:
    comment = submission.comment if refusal is None else _printable(submission.comment)
    parsed = parse_code(submission.code or "")
    record_stage(stage=Stage.approve, action="refused-vote" if refusal else "human-vote", model=mv.model,
                 version=mv.version, outcome="refused" if refusal else submission.decision,
                 actor=person_actor(person) if person else NO_TOKEN_ACTOR,
                 # The code is a signature, not a secret: kept so anyone can verify the vote later.
                 evidence={"decision": submission.decision, "comment": comment, "refusal": refusal,
                           "via": submission.via, "input_key": submission.input_key,
                           "content_hash": mv.governed.content_hash,
                           "approver_token_id": parsed.token_id if parsed else None,
                           "approval_code": submission.code if refusal is None else None},
                 event=None,
                 change=platform.store.add_vote(model=mv.model, version=mv.version, person=person,
                                                decision=submission.decision, comment=comment,
                                                accepted=refusal is None, refusal=refusal, via=submission.via,
                                                flow_run_id=submission.flow_run_id, input_key=submission.input_key))


def people_decision(platform: Platform, mv: ModelVersion, rule: HumanApprovals) -> Decision:
    """What the counted votes add up to; a final one is recorded (approval row, audit record, event), with the
    approval request closed in the same transaction. That transaction refuses an approval when a rejection was
    recorded after the votes were counted: they are counted again (one rejection rejects). When the request was
    closed first, that decision stands."""
    for _ in range(3):
        request = platform.store.approval_request(mv.model, mv.version)
        if request is None:
            return Decision(ApprovalStatus.pending, ["no approval request is open"], approvals_needed=rule.count)
        votes = counted_votes(platform, mv, request, rule)
        decision = tally(votes, rule.count)
        if decision.status == ApprovalStatus.pending:
            return decision
        # Who decided: the rejection that rejects, else the approval that completed the count.
        decider = next((v for v in votes if v.decision == "reject"), votes[-1])
        try:
            record_approval(platform, mv, decision, actor=person_actor(decider.person or ""),
                            action="human-decision",
                            also=platform.store.close_approval_request(mv.model, mv.version, decision.status))
            return decision
        except ApprovalClosedError as closed:
            if not (platform.store.approval_request(mv.model, mv.version) or request).open:
                return Decision(platform.store.approval_status(mv.model, mv.version) or ApprovalStatus.rejected,
                                [closed.what])
    raise ApprovalClosedError(f"{mv.model} v{mv.version}: votes kept changing while they were counted",
                              f"run `modelops approve {mv.model} --version {mv.version}` again")


def expire(platform: Platform, mv: ModelVersion, request: ApprovalRequestInfo,
           rule: HumanApprovals | None = None) -> Decision:
    """The deadline passed. Votes accepted in time that decide are people's decision (recorded as theirs: the
    deadline run may come before the run that counts them); otherwise the version is rejected (recorded) and
    escalated to the approval channel. A decision recorded first stands."""
    if rule is not None:
        decided = people_decision(platform, mv, rule)
        if decided.status != ApprovalStatus.pending:
            return decided
    votes = platform.store.votes(mv.model, mv.version)
    counted = sum(v.accepted for v in votes)
    decision = Decision(ApprovalStatus.rejected, [
        f"no decision within the approval timeout: {counted} of {request.required} approval(s) by "
        f"{request.deadline:%Y-%m-%d %H:%M} UTC"])
    try:
        record_approval(platform, mv, decision, actor=TIMEOUT_ACTOR, action="approval-timeout",
                        also=platform.store.close_approval_request(mv.model, mv.version, "timed-out"))
    except ApprovalClosedError as closed:
        return Decision(platform.store.approval_status(mv.model, mv.version) or ApprovalStatus.rejected,
                        [closed.what])
    notify(platform, mv, "approval-timeout", f"{mv.model} v{mv.version}: approval TIMED OUT, rejected",
           [f"Nobody decided by {request.deadline:%Y-%m-%d %H:%M} UTC ({counted} of {request.required} approval(s)"
            f"; {len(votes) - counted} refused submission(s)). The version is rejected: register, validate and "
            "approve it again to ask anew."], request.flow_run_id)
    return decision


def open_request(platform: Platform, mv: ModelVersion, decision: Decision, rule: HumanApprovals,
                 flow_run_id: str | None) -> bool:
    """Record that the version waits for people (or that this run now waits for them); True when it is new, and
    then approvers are told in Slack what waits, with the evidence and a link to the run."""
    deadline = datetime.now(timezone.utc) + timedelta(hours=rule.timeout_hours)
    entry = record_stage(stage=Stage.approve, action="request-approval", model=mv.model, version=mv.version,
                         outcome=ApprovalStatus.pending, evidence={"reasons": decision.reasons},
                         event=None, change=platform.store.open_approval_request(
                             model=mv.model, version=mv.version, required=rule.count, roles=list(rule.roles),
                             deadline=deadline, flow_run_id=flow_run_id))
    if entry is None:
        return False
    request = platform.store.approval_request(mv.model, mv.version)
    assert request is not None  # just written
    notify(platform, mv, "approval-request", f"{mv.model} v{mv.version} waits for approval",
           [*decision.reasons, f"Needs {request.required} approval(s) from {', '.join(request.roles)} by "
                               f"{request.deadline:%Y-%m-%d %H:%M} UTC; without them it is rejected.",
            "Decide in the Prefect UI (the run's Resume form, with your approver token) or with `modelops approve "
            f"{mv.model} --version {mv.version} --decision approve|reject` (token in MODELOPS_APPROVER_TOKEN)."],
           flow_run_id)
    return True


def run_url(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI (PREFECT_UI_URL), where the approval form is."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base and flow_run_id else None


def build_request_message(mv: ModelVersion, title: str, lines: list[str], link: str | None,
                          metrics: dict[str, float]) -> tuple[str, list[dict[str, Any]]]:
    """Block Kit: what waits, its evidence (risk tier, verdicts, holdout metrics) and the link to the run."""
    governed = mv.governed
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f":raised_hand: {title}"[:150]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Model*\n{mv.model} v{mv.version}"},
            {"type": "mrkdwn", "text": f"*Risk tier*\n{mv.spec.risk_tier.value} (owner {mv.spec.owner})"},
            {"type": "mrkdwn", "text": f"*Validation*\n{governed.validation_status or 'not run'}, security scan "
                                       f"{governed.security_status or 'not run'}"},
            {"type": "mrkdwn", "text": f"*Registered by*\n{governed.registered_by}"},
        ]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
            [*(f"• {line}" for line in lines),
             *(f"• holdout {name}: {value:.4g}" for name, value in sorted(metrics.items()))])[:2900]}},
    ]
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the run in Prefect"}, "url": link}]})
    return f"{title}: " + "; ".join(lines)[:500], blocks


def notify(platform: Platform, mv: ModelVersion, check: str, title: str, lines: list[str],
           flow_run_id: str | None) -> bool:
    """Deliver to the approval channel (the policies' slack_block, else the model's alert block); every attempt is
    recorded as an alert delivery, so an undelivered request is visible."""
    from tasks.alerting import deliver, load_channel

    block = load_policies().slack_block or mv.spec.monitoring.alerts.slack_block
    if block is None:
        return False
    text, blocks = build_request_message(mv, title, lines, run_url(flow_run_id), mv.governed.holdout_metrics)
    channel, error = load_channel(block)
    delivered, attempts = False, 1
    if channel is not None:
        delivered, attempts, error = deliver(channel, text, blocks)
    platform.store.record_alert_delivery(model=mv.model, version=mv.version, check=check, kind="alert",
                                         channel=channel.destination if channel else block, attempts=attempts,
                                         delivered=delivered, error=error, message={"text": text})
    return delivered


record_submission_task = as_task(record_submission)
record_refusal_task = as_task(record_refusal)
people_decision_task = as_task(people_decision)
expire_task = as_task(expire)
open_request_task = as_task(open_request)


# --- the Prefect runs that wait ------------------------------------------------------------------------------
def waiting_run() -> tuple[str | None, Any]:
    """(this flow run's id, its deployment id when it can suspend): only a top-level run of a deployment can be
    suspended and rescheduled; a sub-flow (a per-model approve flow) or a CLI run cannot."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return None, None
    return str(run.id), (run.deployment_id if run.parent_task_run_id is None else None)


DEADLINE_TAG = "approval-deadline"


def is_deadline_run() -> bool:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return bool(context and context.flow_run and DEADLINE_TAG in (context.flow_run.tags or []))


def is_waiting(flow_run_id: str) -> bool:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    return bool(state and state.is_paused())


def stop_waiting(flow_run_id: str | None, reason: str) -> bool:
    """Cancel a run still suspended for a decision made elsewhere (or timed out); True when one was."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    if not flow_run_id or not is_waiting(flow_run_id):
        return False
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(flow_run_id), Cancelled(message=reason), force=True)
    return True


def schedule_deadline_run(deployment_id: Any, mv: ModelVersion, deadline: datetime) -> None:
    """A run of the approve deployment at the deadline: it finds the request undecided, rejects and escalates.
    (Prefect itself would only fail the expired suspended run, running none of our code.)"""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        client.create_flow_run_from_deployment(deployment_id, parameters={"model": mv.model, "version": mv.version},
                                               state=Scheduled(scheduled_time=deadline),
                                               tags=["modelops", DEADLINE_TAG])


def forget_input(flow_run_id: str, key: str) -> None:
    """Delete the form's stored response once read: it holds the approver token, which must not stay readable in
    Prefect's API for anyone who can open the run."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_base_key

    with get_client(sync_client=True) as client:
        client.delete_flow_run_input(UUID(flow_run_id), keyset_from_base_key(f"suspended-{key}")["response"])
