"""How the demo chooses to run its stages: through the stack's deployments only when `modelops up` runs for the
state directory and Prefect talks to its server; else in this process, as without a stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.demo_runs import InProcess, ThroughDeployments, choose_runs, demo_stage_runs, matches, wait_for
from modelops.errors import ModelOpsError

UP = "http://127.0.0.1:4200/api"
LOG = Path("logs/stage-runner.log")


def test_the_demo_runs_through_the_deployments_of_the_server_up_started() -> None:
    runs = choose_runs(UP, UP + "/", LOG)
    assert isinstance(runs, ThroughDeployments) and runs.runner_log == LOG
    assert runs.description == f"through the deployments of the Prefect server at {UP}"


def test_without_up_the_demo_runs_in_this_process() -> None:
    runs = choose_runs(None, "http://127.0.0.1:5555/api", LOG)
    assert isinstance(runs, InProcess) and runs.description == "in this process"


def test_with_prefect_pointed_at_another_server_the_demo_runs_in_this_process() -> None:
    # That server's deployments, if any, are not this state directory's.
    assert isinstance(choose_runs(UP, "http://127.0.0.1:5555/api", LOG), InProcess)


def test_a_state_directory_without_a_stack_runs_the_demo_in_this_process(state_home: Path) -> None:
    from modelops.settings import configure_environment

    assert isinstance(demo_stage_runs(configure_environment()), InProcess)


def test_trigger_made_parameters_match_as_the_strings_the_trigger_templated() -> None:
    assert matches({"model": "flight-delay", "version": "2"}, {"model": "flight-delay", "version": "2"})
    assert not matches({"model": "flight-delay", "version": "1"}, {"model": "flight-delay", "version": "2"})
    assert not matches({"model": "bike-demand"}, {"model": "flight-delay"})


def test_a_chained_run_that_never_comes_fails_with_the_error_that_names_it() -> None:
    error = ModelOpsError("no finished validate run", "read the stage runner's log")
    with pytest.raises(ModelOpsError, match="no finished validate run"):
        wait_for(lambda: None, timeout=0, error=error)
    assert wait_for(lambda: "run", timeout=0, error=error) == "run"


def test_a_result_outside_the_runners_folder_is_refused(tmp_path: Path) -> None:
    """The result's key comes from the Prefect API, which any local user can write: a planted file elsewhere is
    never read as a stage's result."""
    from types import SimpleNamespace

    from modelops.demo_runs import stage_result

    planted = tmp_path / "planted.json"
    planted.write_text('{"model": "flight-delay", "version": "999"}')
    run = SimpleNamespace(name="forged", state=SimpleNamespace(data=SimpleNamespace(storage_key=str(planted))))
    with pytest.raises(ModelOpsError, match="outside the runner's folder"):
        stage_result("register", run)
