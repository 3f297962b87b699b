"""People approving a high-risk model on a real Prefect API: the project's runner (`python -m
modelops.services.runner`, as `modelops up` starts it) serves every stage deployment against the session's test
harness, the triggers chain registered -> validate -> approve, and the approve run suspends for the form the UI
renders. Decisions are submitted through Prefect's API exactly as the UI submits them (resume with run input).
bike-demand (real 2011 rentals) is made high risk in a copy of the configs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from tests.conftest import wait_for
from tests.slack_receiver import SlackReceiver, start_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "bike-demand"


class Stack:
    def __init__(self, home: Path, config_dir: Path, receiver: SlackReceiver, tokens: dict[str, str]) -> None:
        self.home, self.config_dir, self.receiver, self.tokens = home, config_dir, receiver, tokens


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    found = wait_for(probe, timeout)
    assert found, f"timed out after {timeout:.0f} s waiting for {what}"
    return found


def _as(person: str | None) -> None:
    if person is None:
        os.environ.pop("MODELOPS_USER", None)
    else:
        os.environ["MODELOPS_USER"] = person


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from prefect.settings import PREFECT_API_URL

    from blocks.slack import SlackAlertChannel
    from modelops.people import add_person, grant_role, issue_approver_token
    from modelops.platform import get_platform

    base = tmp_path_factory.mktemp("approval")
    home, config_dir = base / "state", base / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    spec_file = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["risk_tier"] = "high"
    spec_file.write_text(yaml.safe_dump(raw))
    policies_file = config_dir / "approval-policies.yaml"
    policies = yaml.safe_load(policies_file.read_text())
    policies["slack_block"] = "approvals"
    policies_file.write_text(yaml.safe_dump(policies))
    receiver, http_server = start_receiver()
    runner = None
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODELOPS_HOME", str(home))
        env.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
        env.setenv("PREFECT_UI_URL", "http://prefect.example.test")
        env.delenv("MODELOPS_USER", raising=False)  # restored on exit, whatever the tests set
        try:
            SlackAlertChannel(bot_token="xoxb-approvals", channel="#approvals",
                              api_base_url=receiver.api_base_url).save("approvals", overwrite=True)
            admin = get_platform()
            # alice bootstraps as modelops_engineer; bob and erin approve; carol is a data scientist and approver
            _as("alice")
            add_person(admin, "alice", ["modelops_engineer"])
            add_person(admin, "bob", ["approver"])
            add_person(admin, "carol", ["data_scientist", "approver"])
            add_person(admin, "erin", ["approver"])
            grant_role(admin, "bob", "auditor")
            tokens = {}
            for person in ("bob", "carol", "erin"):
                _as(person)
                tokens[person] = issue_approver_token(admin, person)[1]
            _as(None)
            runner_env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                          "PREFECT_RUNNER_POLL_FREQUENCY": "1", "MODELOPS_PROJECT_DIR": str(ROOT),
                          "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
            runner = subprocess.Popen([sys.executable, "-m", "modelops.services.runner"], cwd=ROOT, env=runner_env,
                                      stdout=subprocess.DEVNULL, stderr=open(base / "runner.log", "w"))
            # A registered event before the runner has created the deployments (and their triggers) starts nothing.
            wait_until(chained_deployments_exist, 180, "the runner's deployments and their triggers")
            yield Stack(home, config_dir, receiver, tokens)
        finally:
            if runner is not None:
                runner.terminate()
                runner.wait(timeout=60)
            http_server.shutdown()


def chained_deployments_exist() -> bool:
    from prefect.client.orchestration import get_client

    # All of prefect.yaml's: the runner creates each deployment's triggers before the next deployment.
    wanted = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    with get_client(sync_client=True) as client:
        names = {d.name for d in client.read_deployments()}
    return wanted <= names


def register_as(person: str, start: date, end: date) -> str:
    """`MODELOPS_USER=<person> modelops register` on a window of its own (each test approves a version of its own);
    the registered event starts validate, then approve, through the runner's deployments."""
    from flows.register import register

    _as(person)
    try:
        return register(model=MODEL, train_start=start, train_end=end).version
    finally:
        _as(None)


def waiting_run(version: str, timeout: float = 240) -> Any:
    """The approve run suspended for a decision on `version`."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from modelops.platform import get_platform

    store = get_platform().store

    def suspended() -> Any:
        request = store.approval_request(MODEL, version)
        if request is None or request.flow_run_id is None:
            return None
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(request.flow_run_id))
        return run if run.state and run.state.is_paused() else None

    return wait_until(suspended, timeout, f"the approve run of v{version} to suspend for people")


def signed(version: str, decision: str, token: str, comment: str) -> str:
    """The approval code `modelops approve --sign` prints, made on the approver's side with their token."""
    from modelops.approval_signing import sign
    from modelops.platform import get_platform
    from tasks.context import resolve_model_version
    from tasks.human_approval import statement_for

    request = get_platform().store.approval_request(MODEL, version)
    code = sign(token, statement_for(resolve_model_version(MODEL, version), request, decision, comment))
    assert code is not None
    return code


def submit_form(run: Any, decision: str, code: str, comment: str = "") -> None:
    """What the UI does with the form: resume the run with its input."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        result = client.resume_flow_run(run.id, run_input={"decision": decision, "comment": comment,
                                                           "approval_code": code})
    assert result.status.value == "ACCEPT", result.details


def records(version: str, action: str) -> list[Any]:
    from modelops.platform import get_platform

    return [r for r in get_platform().store.audit_trail(MODEL) if r.version == version and r.action == action]


def test_a_high_risk_version_is_approved_through_the_suspended_runs_form_and_then_serves(stack: Stack) -> None:
    from modelops.platform import get_platform

    version = register_as("carol", date(2011, 1, 1), date(2011, 3, 16))
    run = waiting_run(version)
    store = get_platform().store
    assert store.approval_status(MODEL, version) == "pending"
    assert store.serving_version(MODEL, "champion") is None
    request = [m for m in stack.receiver.messages if f"{MODEL} v{version} waits for approval" in m.get("text", "")]
    assert request, "approvers were told in Slack"
    button = request[0]["blocks"][-1]["elements"][0]
    assert button["url"] == f"http://prefect.example.test/runs/flow-run/{run.id}"
    assert "Risk tier" in str(request[0]["blocks"]) and "holdout r2" in str(request[0]["blocks"])

    # bob signs on his side (the token stays there) and pastes the printed code into the form
    comment = "reviewed the holdout and the data quality"
    printed = cli(stack, "approve", MODEL, "--version", version, "--decision", "approve", "--comment", comment,
                  "--sign", token=stack.tokens["bob"])
    assert printed.returncode == 0, printed.stderr
    code = printed.stdout.strip()
    assert stack.tokens["bob"] not in printed.stdout + printed.stderr
    submit_form(run, "approve", code, comment)
    wait_until(lambda: store.serving_version(MODEL, "champion") == version, 240, f"v{version} to serve")
    assert store.approval_status(MODEL, version) == "approved"
    [vote] = records(version, "human-vote")
    assert vote.actor == "person:bob" and vote.outcome == "approve"
    assert vote.evidence["comment"] == comment and vote.evidence["approval_code"] == code
    [decided] = records(version, "human-decision")
    assert decided.actor == "person:bob" and decided.outcome == "approved"
    [registered] = records(version, "train-and-register")
    assert registered.actor == "person:carol"
    # the chained stages ran as the service, and the deployment is the deploy flow's
    assert {r.actor for r in records(version, "run-gates")} == {"service:modelops"}
    [deployed] = records(version, "serve-as-champion")
    assert deployed.actor == "service:modelops"


def test_the_form_input_is_deleted_once_counted(stack: Stack) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    version = register_as("carol", date(2011, 1, 8), date(2011, 3, 16))
    run = waiting_run(version)
    submit_form(run, "reject", signed(version, "reject", stack.tokens["bob"], "too little data"), "too little data")
    wait_until(lambda: records(version, "human-decision"), 240, "bob's rejection to be recorded")
    with get_client(sync_client=True) as client:
        stored = client.filter_flow_run_input(UUID(str(run.id)), key_prefix="suspended-decision-1", limit=10,
                                              exclude_keys=set())
    assert [i.key for i in stored if i.key.endswith("-response")] == []
    assert records(version, "human-decision")[0].outcome == "rejected"


def test_a_form_without_a_valid_approval_code_is_refused_recorded_and_the_run_waits_on(stack: Stack) -> None:
    from modelops.platform import get_platform

    version = register_as("carol", date(2011, 1, 15), date(2011, 3, 16))
    run = waiting_run(version)
    forged = f"0123456789abcdef.{int(time.time())}." + "A" * 86
    submit_form(run, "approve", forged, "trust me")
    [refused] = wait_until(lambda: records(version, "refused-vote"), 240, "the forged form to be refused")
    assert refused.actor == "unknown:no-valid-approver-token"
    assert refused.evidence["refusal"] == "approver token 0123456789abcdef is not valid"
    assert forged not in str(refused.evidence)  # a refused code is not kept as if it were a signature
    again = waiting_run(version)  # suspended again, for the next form
    assert again.id == run.id
    assert get_platform().store.approval_status(MODEL, version) == "pending"


def test_the_person_who_registered_the_version_cannot_approve_it(stack: Stack) -> None:
    from modelops.platform import get_platform

    version = register_as("carol", date(2011, 1, 22), date(2011, 3, 16))
    run = waiting_run(version)
    submit_form(run, "approve", signed(version, "approve", stack.tokens["carol"], "looks good to me"),
                "looks good to me")
    [refused] = wait_until(lambda: records(version, "refused-vote"), 240, "carol's own approval to be refused")
    assert refused.actor == "person:carol"
    assert refused.evidence["refusal"].startswith("four eyes: carol registered or retrained")
    waiting_run(version)
    assert get_platform().store.approval_status(MODEL, version) == "pending"


class edited_spec:
    """The model's spec with approval fields changed for one test (flow runs read the file afresh)."""

    def __init__(self, stack: Stack, **approval: Any) -> None:
        self.path, self.approval = stack.config_dir / "models" / f"{MODEL}.yaml", approval

    def __enter__(self) -> None:
        self.original = self.path.read_text()
        raw = yaml.safe_load(self.original)
        raw["approval"].update(self.approval)
        self.path.write_text(yaml.safe_dump(raw))

    def __exit__(self, *exc: Any) -> None:
        self.path.write_text(self.original)


def test_a_policy_asking_for_two_approvers_waits_for_the_second(stack: Stack) -> None:
    from modelops.platform import get_platform

    store = get_platform().store
    with edited_spec(stack, human_approvals=2):
        version = register_as("carol", date(2011, 2, 19), date(2011, 3, 16))
        run = waiting_run(version)
        submit_form(run, "approve", signed(version, "approve", stack.tokens["bob"], "first pair of eyes"),
                    "first pair of eyes")
        wait_until(lambda: records(version, "human-vote"), 240, "bob's vote to be counted")
        waiting_run(version)  # suspended again: one approval of two
        assert store.approval_status(MODEL, version) == "pending"
        submit_form(run, "approve", signed(version, "approve", stack.tokens["erin"], "second pair of eyes"),
                    "second pair of eyes")
        wait_until(lambda: store.approval_status(MODEL, version) == "approved", 240, "the second approval")
    assert [r.actor for r in records(version, "human-vote")] == ["person:bob", "person:erin"]
    [decided] = records(version, "human-decision")
    assert decided.evidence["reasons"] == ["approved by bob: first pair of eyes", "approved by erin: second pair of eyes"]


def test_champion_moves_only_through_deploy_after_approval(stack: Stack) -> None:
    from flows.deploy import deploy
    from modelops.errors import NotApprovedError
    from modelops.platform import get_platform

    version = register_as("carol", date(2011, 2, 26), date(2011, 3, 16))
    waiting_run(version)
    _as("alice")  # a modelops_engineer may deploy, but not a version people have not approved
    try:
        with pytest.raises(NotApprovedError, match=f"{MODEL} v{version} is not approved \\(approval: pending\\)"):
            deploy(model=MODEL, version=version)
    finally:
        _as(None)
    assert get_platform().store.serving_version(MODEL, "champion") != version


def test_without_a_decision_by_the_deadline_the_version_is_rejected_and_escalated(stack: Stack) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from modelops.platform import get_platform

    store = get_platform().store
    with edited_spec(stack, timeout_hours=0.01):  # 36 seconds
        version = register_as("carol", date(2011, 1, 29), date(2011, 3, 16))
        request = wait_until(lambda: store.approval_request(MODEL, version), 240, "the approval request")
        [expired] = wait_until(lambda: records(version, "approval-timeout"), 240, "the deadline run to reject")
    assert expired.actor == "policy:approval-timeout" and expired.outcome == "rejected"
    assert "no decision within the approval timeout: 0 of 1 approval(s)" in expired.evidence["reasons"][0]
    assert store.approval_status(MODEL, version) == "rejected"
    # escalated once the rejection is recorded, and nobody waits for a form any more
    escalated = wait_until(lambda: [m for m in stack.receiver.messages
                                    if f"{MODEL} v{version}: approval TIMED OUT" in m.get("text", "")], 60,
                           "the escalation in Slack")
    assert len(escalated) == 1 and "Nobody decided by" in str(escalated[0]["blocks"])

    def cancelled() -> bool:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(UUID(request.flow_run_id)).state.is_cancelled()

    wait_until(cancelled, 60, "the waiting run to be cancelled")


def cli(stack: Stack, *argv: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`modelops ...` in its own process, as a script runs it, against the same Prefect API and state."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k != "MODELOPS_APPROVER_TOKEN"}
    env.update(PREFECT_API_URL=str(PREFECT_API_URL.value()), PYTHONPATH=str(ROOT),
               **({"MODELOPS_APPROVER_TOKEN": token} if token else {}))
    return subprocess.run([sys.executable, "-m", "modelops.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_an_approver_decides_from_the_command_line_with_the_token_in_the_environment(stack: Stack) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from modelops.platform import get_platform

    version = register_as("carol", date(2011, 2, 5), date(2011, 3, 16))
    run = waiting_run(version)
    done = cli(stack, "approve", MODEL, "--version", version, "--decision", "approve", "--comment", "ok by me",
               token=stack.tokens["bob"])
    assert done.returncode == 0, done.stderr
    assert f"{MODEL} v{version}: approved" in done.stdout
    [vote] = records(version, "human-vote")
    assert vote.actor == "person:bob" and vote.evidence["via"] == "cli"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(str(run.id))).state.is_cancelled()
    # It serves as champion, or, beside the champion an earlier test of this module approved, as a challenger.
    store = get_platform().store
    wait_until(lambda: version in {store.serving_version(MODEL, role) for role in ("champion", "challenger")}, 240,
               f"v{version} to serve after the CLI's approval")


def test_a_decision_from_the_command_line_without_a_token_is_refused_and_recorded(stack: Stack) -> None:
    version = register_as("carol", date(2011, 2, 12), date(2011, 3, 16))
    waiting_run(version)
    refused = cli(stack, "approve", MODEL, "--version", version, "--decision", "approve")
    assert refused.returncode == 2
    assert "refused and recorded: no approval code was given" in refused.stderr
    [record] = records(version, "refused-vote")
    assert record.evidence["via"] == "cli" and record.actor == "unknown:no-valid-approver-token"
