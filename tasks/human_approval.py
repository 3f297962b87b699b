"""People approving a version: the request they are asked (recorded, announced in Slack with the evidence and a link
to the waiting run), the votes they submit (each judged: a valid approver token, the approver role, four eyes;
every refusal recorded with its reason), the decision their votes add up to, and the timeout that rejects and
escalates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field, SecretStr

from modelops.approval_policy import HumanApprovals, load_policies
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.people import APPROVER, person_actor, token_holder
from modelops.platform import Platform
from modelops.store.records import ApprovalRequestInfo
from tasks import as_task
from tasks.approval import Decision, tally
from tasks.audit import record_stage
from tasks.context import ModelVersion
from tasks.decisions import record_approval

TIMEOUT_ACTOR = "policy:approval-timeout"
NO_TOKEN_ACTOR = "unknown:no-valid-approver-token"
# Form inputs a run accepts before it stops waiting for more (each one refused or counted is recorded).
MAX_INPUTS = 20


class ApprovalForm(RunInput):
    """The form the Prefect UI shows on a run waiting for approval."""

    decision: Literal["approve", "reject"] = Field(description="Approve or reject this version.")
    comment: str = Field("", max_length=2000, description="Why: recorded in the audit trail with your decision.")
    approver_token: SecretStr = Field(description="Your personal approver token (`modelops people token <you>`): "
                                                  "it says who decides. Without a valid one the decision is "
                                                  "refused and recorded.")


@dataclass(frozen=True)
class Submission:
    decision: str
    comment: str
    token: str | None = field(repr=False)  # never in a log line or a task's repr
    via: Literal["form", "cli"]
    flow_run_id: str | None = None
    input_key: str | None = None


def _version_authors(platform: Platform, mv: ModelVersion) -> set[str]:
    """Everyone who registered or retrained this version: four eyes keeps them from approving it."""
    authors = {mv.governed.registered_by}
    for record in platform.store.audit_trail(mv.model):
        if record.stage in (Stage.register, Stage.retrain) and (record.version == mv.version or
                                                                record.evidence.get("challenger") == mv.version):
            authors.add(record.actor)
    return authors


def judge(platform: Platform, mv: ModelVersion, submission: Submission, rule: HumanApprovals) -> tuple[str | None,
                                                                                                       str | None]:
    """(person, None) when the submission counts; (person or None, why not) when it is refused."""
    person, problem = token_holder(platform.store, submission.token)
    if person is None:
        return None, problem
    held = platform.store.person(person)
    roles = set(held.roles) if held else set()
    if APPROVER not in roles or not roles & set(rule.roles):
        return person, (f"{person} may not approve: it needs the approver role"
                        + (f" and one of {', '.join(rule.roles)}" if set(rule.roles) != {APPROVER} else "")
                        + f"; {person} holds {', '.join(sorted(roles)) or 'none'}")
    if person_actor(person) in _version_authors(platform, mv):
        return person, f"four eyes: {person} registered or retrained {mv.model} v{mv.version} and cannot approve it"
    if any(v.accepted and v.person == person for v in platform.store.votes(mv.model, mv.version)):
        return person, f"{person} has decided on {mv.model} v{mv.version} already"
    return person, None


def record_submission(platform: Platform, mv: ModelVersion, submission: Submission,
                      rule: HumanApprovals) -> tuple[bool, str | None]:
    """Judge the submission and record it (vote row and audit record together); (counted, refusal reason). A form
    input is recorded once: judging it again on a later run of the flow changes nothing."""
    person, refusal = judge(platform, mv, submission, rule)
    outcome = "refused" if refusal else submission.decision
    record_stage(stage=Stage.approve, action="refused-vote" if refusal else "human-vote", model=mv.model,
                 version=mv.version, outcome=outcome, actor=person_actor(person) if person else NO_TOKEN_ACTOR,
                 evidence={"decision": submission.decision, "comment": submission.comment, "refusal": refusal,
                           "via": submission.via, "input_key": submission.input_key,
                           "content_hash": mv.governed.content_hash},
                 event=None,
                 change=platform.store.add_vote(model=mv.model, version=mv.version, person=person,
                                                decision=submission.decision, comment=submission.comment,
                                                accepted=refusal is None, refusal=refusal, via=submission.via,
                                                flow_run_id=submission.flow_run_id, input_key=submission.input_key))
    return refusal is None, refusal


def people_decision(platform: Platform, mv: ModelVersion, required: int) -> Decision:
    """What the accepted votes add up to; a final one is recorded (approval row, audit record, event), with the
    approval request closed."""
    decision = tally(platform.store.votes(mv.model, mv.version), required)
    if decision.status != ApprovalStatus.pending:
        deciders = [v.person for v in platform.store.votes(mv.model, mv.version) if v.accepted]
        record_approval(platform, mv, decision, actor=person_actor(deciders[-1]), action="human-decision",
                        also=platform.store.close_approval_request(mv.model, mv.version, decision.status))
    return decision


def expire(platform: Platform, mv: ModelVersion, request: ApprovalRequestInfo) -> Decision:
    """No decision by the deadline: rejected (recorded), and escalated to the approval channel."""
    votes = platform.store.votes(mv.model, mv.version)
    counted = sum(v.accepted for v in votes)
    decision = Decision(ApprovalStatus.rejected, [
        f"no decision within the approval timeout: {counted} of {request.required} approval(s) by "
        f"{request.deadline:%Y-%m-%d %H:%M} UTC"])
    record_approval(platform, mv, decision, actor=TIMEOUT_ACTOR, action="approval-timeout",
                    also=platform.store.close_approval_request(mv.model, mv.version, "timed-out"))
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
