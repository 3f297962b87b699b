"""How the demo chooses to run its stages: through the stack's deployments only when `modelops up` runs for the
state directory and Prefect talks to its server; else in this process, as without a stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.demo_runs import InProcess, ThroughDeployments, choose_runs, demo_stage_runs, matches, wait_for
from modelops.errors import ModelOpsError

UP = "http://127.0.0.1:4200/api"
LOG = Path("logs/stage-runner.log")
RESULTS = Path("prefect/storage")


def test_the_demo_runs_through_the_deployments_of_the_server_up_started() -> None:
    runs = choose_runs(UP, UP + "/", LOG, RESULTS)
    assert isinstance(runs, ThroughDeployments) and runs.runner_log == LOG and runs.results == RESULTS
    assert runs.description == f"through the deployments of the Prefect server at {UP}"


def test_without_up_the_demo_runs_in_this_process() -> None:
    runs = choose_runs(None, "http://127.0.0.1:5555/api", LOG, RESULTS)
    assert isinstance(runs, InProcess) and runs.description == "in this process"


def test_with_prefect_pointed_at_another_server_the_demo_runs_in_this_process() -> None:
    # That server's deployments, if any, are not this state directory's.
    assert isinstance(choose_runs(UP, "http://127.0.0.1:5555/api", LOG, RESULTS), InProcess)


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
    (tmp_path / "storage").mkdir()
    with pytest.raises(ModelOpsError, match="outside the runner's folder"):
        stage_result("register", run, tmp_path / "storage")


def test_a_result_in_the_stacks_folder_is_read_whatever_prefect_home_this_process_has(tmp_path: Path) -> None:
    """The runner keeps results where `up` told it (Settings.runner_results); the demo's own shell may have another
    PREFECT_HOME (the test session's has), and the result is still found there and typed as the flow returns it."""
    from types import SimpleNamespace

    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    from modelops.demo_runs import stage_result

    results = tmp_path / "state" / "prefect" / "storage"
    results.mkdir(parents=True)
    assert not results.resolve().is_relative_to(Path(PREFECT_LOCAL_STORAGE_PATH.value()).resolve())
    kept = results / "0f3c"
    kept.write_text('{"model": "flight-delay", "version": "3", "created": true, "source": "trained"}')
    kept.chmod(0o600)
    run = SimpleNamespace(name="kept", state=SimpleNamespace(data=SimpleNamespace(storage_key=str(kept))))
    registered = stage_result("register", run, results)
    assert (type(registered).__name__, registered.version, registered.created) == ("Registered", "3", True)
