"""approve: apply the approval policy to a validated version: approved or rejected by rule, or pending people.

Where people must approve, a run of the approve deployment suspends (no worker is held) for the approval form the
Prefect UI renders; each submission is judged (a signature of exactly that decision made with the approver's token,
role, four eyes) and recorded; the run suspends
again until the policy's approvals are in, one rejection rejects, and a run scheduled at the deadline rejects and
escalates a version nobody decided on."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from prefect import flow
from pydantic import BaseModel, ValidationError

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.approval_policy import HumanApprovals, effective_policy
from modelops.lineage_events import STAGE_HOOKS
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.platform import Platform, get_platform
from modelops.store.records import ApprovalRequestInfo
from tasks.approval import Decision
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import apply_approval_policy_task, approval_spec, record_approval_task
from tasks.human_approval import (
    MAX_INPUTS, ApprovalForm, Submission, expire_task, forget_input, is_deadline_run, is_waiting, open_request_task,
    people_decision_task, record_refusal_task, record_submission_task, schedule_deadline_run, stop_waiting,
    waiting_run,
)
from tasks.integrity import check_pinned_files_task
from tasks.stage_artifacts import approval_artifact, decided_by, publish

# A suspended run outlives its deadline by this much in Prefect: the deadline run rejects and cancels it first.
SUSPEND_GRACE_SECONDS = 3600
# A runner starts scheduled runs up to its prefetch time early: the deadline run waits out that much.
DEADLINE_EARLY_SECONDS = 60


class ApprovalOutcome(BaseModel):
    model: str
    version: str
    status: str  # an ApprovalStatus
    reasons: list[str]


@flow(name="approve", log_prints=True, **STAGE_HOOKS)
def approve(model: ModelName, version: Version) -> ApprovalOutcome:
    handed, result = hand_over(Stage.approve, dict(model=model, version=version))
    return result if handed else standard_approve(resolve_model_version(model, version))


def _outcome(mv: ModelVersion, status: str, reasons: list[str]) -> ApprovalOutcome:
    """The result of every decision the run reached (approved, rejected or pending), shown in the UI as the
    artifact `approval-<model>` with who recorded the decision."""
    print(f"{mv.model} v{mv.version}: {status} ({'; '.join(reasons)})")
    by = decided_by(get_platform(), mv.model, mv.version)
    publish("approval", [approval_artifact(mv.model, mv.version, status, reasons, by)])
    return ApprovalOutcome(model=mv.model, version=mv.version, status=status, reasons=reasons)


def standard_approve(mv: ModelVersion, extra: Decision | None = None) -> ApprovalOutcome:
    """The standard approval: files checked against their pin, the policy applied, the decision recorded; where
    people must approve, their decision. `extra`: a per-model flow's own finding; a rejection there rejects the
    version with its reasons added."""
    platform = get_platform()
    if mv.governed.retired:  # a retired version keeps the decision it had; it can never serve again anyway
        return ApprovalOutcome(model=mv.model, version=mv.version, status=ApprovalStatus.rejected,
                               reasons=["the version is retired"])
    # What is approved is the file that was validated: a changed file is refused here (audited and alerted).
    check_pinned_files_task(platform, mv.spec, mv.governed, "approval")
    decision = apply_approval_policy_task(platform, mv)
    if extra is not None and extra.status == ApprovalStatus.rejected:
        failures = [r for r in decision.reasons if decision.status == ApprovalStatus.rejected]
        decision = Decision(ApprovalStatus.rejected, list(dict.fromkeys([*failures, *extra.reasons])))
    request = platform.store.approval_request(mv.model, mv.version)
    if decision.status == ApprovalStatus.pending and request is not None and not request.open:
        # People (or the deadline) decided: that decision stands while the rules still pass.
        status = platform.store.approval_status(mv.model, mv.version) or request.outcome or ApprovalStatus.rejected
        return _outcome(mv, status, [f"decided by people: {request.outcome}"])
    status = record_approval_task(platform, mv, decision)
    if decision.status != ApprovalStatus.pending:
        if request is not None and request.open:
            stop_waiting(request.flow_run_id, f"the rules decided: {status}")
        return _outcome(mv, status, decision.reasons)
    return _await_people(platform, mv, decision, effective_policy(approval_spec(platform, mv)).human_approvals)


def _await_people(platform: Platform, mv: ModelVersion, decision: Decision, rule: HumanApprovals) -> ApprovalOutcome:
    request = platform.store.approval_request(mv.model, mv.version)
    early = (request.deadline - datetime.now(timezone.utc)).total_seconds() if request else 0
    if request is not None and 0 < early <= DEADLINE_EARLY_SECONDS and is_deadline_run():
        time.sleep(early)  # the runner may start a scheduled run a few seconds before its time
    if request is not None and request.deadline <= datetime.now(timezone.utc):
        outcome = expire_task(platform, mv, request, rule)
        stop_waiting(request.flow_run_id, "the approval deadline passed: rejected")
        return _outcome(mv, outcome.status, outcome.reasons)
    run_id, deployment_id = waiting_run()
    if request is not None and request.flow_run_id not in (None, run_id) and is_waiting(request.flow_run_id):
        return _outcome(mv, ApprovalStatus.pending, [*decision.reasons,
                                                     f"waiting for people in flow run {request.flow_run_id}"])
    opened = open_request_task(platform, mv, decision, rule, run_id if deployment_id else None)
    # One deadline run per request: when a run of the deployment first waits on it (not when another takes over).
    if opened and deployment_id and (request is None or request.flow_run_id is None):
        first = platform.store.approval_request(mv.model, mv.version)
        assert first is not None  # just written
        schedule_deadline_run(deployment_id, mv, first.deadline)
    if not deployment_id or run_id is None:
        return _outcome(mv, ApprovalStatus.pending, [
            *decision.reasons, "decide with `modelops approve --decision` (approver token in "
                               "MODELOPS_APPROVER_TOKEN), or run the approve deployment to get the form in the UI "
                               "(with the code `modelops approve --sign` prints)"])
    return _wait_for_forms(platform, mv, rule, run_id)


def _wait_for_forms(platform: Platform, mv: ModelVersion, rule: HumanApprovals, run_id: str) -> ApprovalOutcome:
    """Suspend for the next form; after each (this run resumes from the top and gets here again, the inputs it
    counted before are skipped by key) judge and record it, until the votes decide."""
    for _ in range(MAX_INPUTS):
        request = platform.store.approval_request(mv.model, mv.version)
        assert request is not None  # opened before waiting
        if not request.open:
            status = platform.store.approval_status(mv.model, mv.version) or ApprovalStatus.rejected
            return _outcome(mv, status, [f"decided: {request.outcome}"])
        key = f"decision-{len(platform.store.inputs_seen(run_id)) + 1}"
        remaining = max(1, int((request.deadline - datetime.now(timezone.utc)).total_seconds()))
        try:
            form = _next_form(mv, request, key, remaining)
        except ValidationError as exc:  # an input posted around the form (straight to Prefect's API)
            record_refusal_task(platform, mv, Submission(decision="?", comment="", code=None, via="form",
                                                         flow_run_id=run_id, input_key=key),
                                f"the submitted input is not the approval form: {exc.error_count()} invalid "
                                "field(s)")
            forget_input(run_id, key)
            continue
        submission = Submission(decision=form.decision, comment=form.comment, code=form.approval_code, via="form",
                                flow_run_id=run_id, input_key=key)
        try:
            counted, refusal = record_submission_task(platform, mv, submission, rule)
        except Exception as exc:  # noqa: BLE001 - one bad form must not end the wait for everyone else's
            # Recorded as refused under the input's key (so it is not read again), then the run waits on; when
            # even that cannot be written, the store is down: fail, and the input stays for the next run.
            counted, refusal = record_refusal_task(platform, mv, submission,
                                                   f"the submission could not be recorded: {type(exc).__name__}")
        forget_input(run_id, key)  # after counting it: a crash in between must not lose the decision
        if not counted:
            print(f"{mv.model} v{mv.version}: a submitted decision was refused ({refusal}); waiting on")
            continue
        decision = people_decision_task(platform, mv, rule)
        if decision.status != ApprovalStatus.pending:
            return _outcome(mv, decision.status, decision.reasons)
    return _outcome(mv, ApprovalStatus.pending, [f"{MAX_INPUTS} submissions and no decision: run approve again"])


def _next_form(mv: ModelVersion, request: ApprovalRequestInfo, key: str, remaining: int) -> ApprovalForm:
    """Suspend for the next form (the first call raises to suspend; on resume it returns the validated input)."""
    from prefect.flow_runs import suspend_flow_run

    return suspend_flow_run(wait_for_input=ApprovalForm.with_initial_data(description=(
        f"**{mv.model} v{mv.version}** waits for {request.required} approval(s) from "
        f"{', '.join(request.roles)} by {request.deadline:%Y-%m-%d %H:%M} UTC. Sign your decision: "
        f"`modelops approve {mv.model} --version {mv.version} --decision approve|reject --comment '...' --sign` "
        "(your approver token in MODELOPS_APPROVER_TOKEN) prints the approval code for this form; a form "
        "without a valid one is refused and recorded, and the run waits on.")),
        key=key, timeout=remaining + SUSPEND_GRACE_SECONDS)
