"""`make demo` with `modelops up` running: its stages run as runs of the stack's stage deployments, and where
prefect.yaml chains stages the demo starts the first and the triggers start the rest, so the Prefect UI shows each
run under its deployment with its chain (register -> validate -> approve -> deploy; the drift breach -> retrain)."""

from __future__ import annotations

import pytest

from tests.integration import test_closed_loop
from tests.integration.test_closed_loop import LiveStack

pytestmark = pytest.mark.e2e
live = test_closed_loop.live  # a stack of this module's own: `up` on free ports over a fresh state directory

ONBOARDED = [("bike-demand", "1"), ("flight-delay", "1"), ("flight-delay-lgbm", "1")]


def _made_by_a_trigger(run) -> bool:  # type: ignore[no-untyped-def]
    return run.created_by is not None and run.created_by.type == "AUTOMATION"


# On the laptop default only: the closed loop runs the scale-out engines, and one demo through a stack is ~6 min.
@pytest.mark.parametrize("live", ["sqlite-runner"], indirect=True)
def test_the_demo_runs_under_the_stage_deployments_and_the_triggers_chain_its_stages(
        live: LiveStack, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"Stages run through the deployments of the Prefect server at {live.api_url}" in out
    assert "segment check passed: roc_auc by origin EWR" in out  # the same story as in-process

    runs = {stage: live.runs(stage) for stage in
            ("register", "validate", "approve", "deploy", "score", "monitor", "retrain")}
    for stage, stage_runs in runs.items():
        assert stage_runs and all(r.state_name == "Completed" for r in stage_runs), stage
    # The demo started each model's register run itself; the triggers started validate, approve and deploy.
    assert sorted(r.parameters["model"] for r in runs["register"]) == [model for model, _ in ONBOARDED]
    assert not any(_made_by_a_trigger(r) for r in runs["register"] + runs["score"] + runs["monitor"])
    for stage in ("validate", "approve", "deploy"):
        assert sorted((r.parameters["model"], r.parameters["version"]) for r in runs[stage]) == ONBOARDED, stage
        assert all(_made_by_a_trigger(r) for r in runs[stage]), stage
    # Each chained run came after the run whose event started it.
    for model, version in ONBOARDED:
        chain = [next(r for r in runs[stage] if r.parameters["model"] == model)
                 for stage in ("register", "validate", "approve", "deploy")]
        assert all(earlier.end_time <= later.start_time for earlier, later in zip(chain, chain[1:])), model
    # July's drift breach asked for a retrain: the retrain deployment's trigger started flight-delay's, once.
    flight_retrains = [r for r in runs["retrain"] if r.parameters["model"] == "flight-delay"]
    assert len(flight_retrains) == 1 and _made_by_a_trigger(flight_retrains[0])
    from modelops.platform import get_platform

    assert get_platform().catalog.aliases("flight-delay") == {"champion": "2"}
