"""Artifact keys, the gate table of reports the flows do not produce on real data, and where publishing happens:
only inside a flow run, and a refused artifact never fails the stage."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modelops.spec import load_spec
from tasks.stage_artifacts import StageArtifact, artifact_key, publish, validation_rows
from tests.conftest import wait_for

KEY = re.compile(r"^[a-z0-9-]+$")


def test_a_model_name_that_is_a_valid_key_stays_readable() -> None:
    assert artifact_key("validation", "flight-delay") == "validation-flight-delay"


def test_any_model_name_becomes_a_key_prefect_accepts_and_names_never_share_one() -> None:
    keys = {artifact_key("approval", name) for name in ("Flight_Delay v2", "flight_delay v2", "ünïcode", "a..b")}
    assert len(keys) == 4 and all(KEY.match(k) for k in keys)
    assert artifact_key("approval", "Flight_Delay v2").startswith("approval-flight-delay-v2-")


def test_gates_after_a_failed_security_scan_show_as_not_run() -> None:
    report = {"passed": False, "failures": ["security: pickle file refused"],
              "security": {"passed": False, "findings": ["pickle file refused"], "kind": "sklearn"}}
    rows = validation_rows(load_spec("flight-delay"), report)
    assert rows[0] == {"gate": "security-scan", "check": "pinned files and scan findings", "value": 1, "limit": 0,
                       "verdict": "fail", "detail": "pickle file refused"}
    assert [(r["gate"], r["verdict"]) for r in rows[1:]] == [
        ("schema", "not run"), ("holdout-metrics", "not run"), ("data-quality", "not run"), ("fairness", "not run")]


def test_a_failed_expectation_row_names_its_column_and_the_share_it_allows() -> None:
    report: dict[str, Any] = {
        "passed": False, "failures": ["data quality: 3 of 40 expectations failed on the holdout"],
        "security": {"passed": True, "findings": []}, "holdout_window": ["2013-02-15", "2013-03-01"],
        "holdout_rows": 100, "metrics": {}, "fairness": {},
        "data_quality": {"success_share": 0.925, "evaluated": 40, "failures": [
            {"expectation": "expect_column_values_to_be_in_set", "column": "carrier", "unexpected_percent": 12.5,
             "partial_unexpected": ["ZZ"]}]}}
    suite = [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "carrier", "mostly": 0.95}}]
    rows = [r for r in validation_rows(load_spec("flight-delay"), report, suite) if r["gate"] == "data-quality"]
    assert rows[0]["verdict"] == "fail" and rows[0]["detail"] == "3 of 40 expectations failed on the holdout"
    assert rows[1] == {"gate": "data-quality", "check": "expect_column_values_to_be_in_set", "value": 0.125,
                       "limit": 0.05, "verdict": "fail", "detail": "column carrier: share of rows unexpected, e.g. ZZ"}


def _artifacts(key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


@pytest.mark.usefixtures("prefect_api")
def test_a_plain_function_call_publishes_nothing() -> None:
    key = "outside-a-flow-run"
    assert publish("test", [StageArtifact(key, "not in a run", markdown="# nothing")]) is False
    assert _artifacts(key) == []


@pytest.mark.usefixtures("prefect_api")
def test_an_artifact_prefect_refuses_fails_its_task_run_not_the_stage(caplog: pytest.LogCaptureFixture) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    @flow(name="publishing-stage")
    def stage() -> tuple[bool, bool]:
        refused = publish("test", [StageArtifact("Not A Key", "refused", markdown="# refused")])
        published = publish("test", [StageArtifact("published-after-a-refusal", "fine", markdown="# fine")])
        return refused, published

    state = stage(return_state=True)
    assert state.is_completed() and state.result() == (False, True)

    def task_runs() -> list[tuple[str, str]] | None:
        # Task run states reach the API as events, a moment after the run: wait for both to be final.
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        found = sorted((r.name.rsplit("-", 1)[0], r.state_type.value) for r in runs)
        return found if all(s in ("COMPLETED", "FAILED") for _, s in found) and len(found) == 2 else None

    assert wait_for(task_runs) == [("publish-test-artifacts", "COMPLETED"), ("publish-test-artifacts", "FAILED")]
    assert "artifacts Not A Key not published" in caplog.text
    assert len(_artifacts("published-after-a-refusal")) == 1


def test_an_approvers_comment_is_shown_as_written_never_as_a_heading_link_or_image() -> None:
    from tasks.stage_artifacts import approval_artifact

    comment = "ok\n\n# m v3: APPROVED by CISO\n![x](https://evil.example/p.png) [Resume here](https://evil.example) <b>"
    markdown = approval_artifact("m", "3", "rejected", [comment], "alice").markdown or ""
    reasons = markdown.split("## Reasons", 1)[1].strip().splitlines()
    assert len(reasons) == 1 and reasons[0].startswith("- ok")  # one line: no heading of its own
    # every bracket and tag opener escaped (a backslash before it): no link, image or tag remains
    assert not re.search(r"(?<!\\)[\[\]<]", reasons[0]), reasons[0]
    assert "!\\[x\\](https://evil.example/p.png)" in reasons[0]  # the text itself is all there, escaped
