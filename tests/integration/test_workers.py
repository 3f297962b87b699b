"""`modelops up --workers 1` on a live stack: the stage deployments on the process work pool, executed by a Prefect
worker started outside the project's folder (prefect.yaml's pull step takes each run there), and the stage
concurrency limit of configs/platform.yaml holding when more runs are asked for at once than it allows."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.live_stack import live_stack, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KPIS_LIMIT = 2  # the test's configs/platform.yaml: kpis runs at once


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    root = tmp_path_factory.mktemp("workers")
    config_dir = root / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    platform = yaml.safe_load((config_dir / "platform.yaml").read_text())
    platform["concurrency"]["stages"]["kpis"] = KPIS_LIMIT
    (config_dir / "platform.yaml").write_text(yaml.safe_dump(platform))
    saved = os.environ.get("MODELOPS_CONFIG_DIR")
    os.environ["MODELOPS_CONFIG_DIR"] = str(config_dir)
    try:
        with live_stack(root / "state", with_mlflow=False, gateway_port=None, with_streaming=False,
                        workers=1) as (_, services, stopped):
            yield services
    finally:
        if saved is None:
            os.environ.pop("MODELOPS_CONFIG_DIR", None)
        else:
            os.environ["MODELOPS_CONFIG_DIR"] = saved
    # the worker replaced the runner, and `down` stopped it with the rest
    assert sorted(stopped) == ["modelops-worker-1", "prefect-server", "stage-service"]


def test_a_worker_outside_the_project_runs_a_stage_from_the_folder_prefect_yamls_pull_step_names(
        stack: list[Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from modelops.settings import project_dir

    worker = next(s for s in stack if s.name == "modelops-worker-1")
    worker_cwd = Path(os.readlink(f"/proc/{worker.pid}/cwd"))
    assert not (worker_cwd / "flows").exists()  # flows/kpis.py is not reachable from where the worker runs
    committed_pull = yaml.safe_load((ROOT / "prefect.yaml").read_text())["pull"]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("kpis/kpis")
    assert deployment.work_pool_name == "modelops-stages" and deployment.pull_steps == committed_pull
    assert deployment.entrypoint == "flows/kpis.py:kpis" and deployment.path is None

    run = run_deployment("kpis/kpis", timeout=900)
    assert run.state_name == "Completed"
    # the worker ran the pull step before loading flows/kpis.py relative to the directory it entered
    log = Path(worker.log).read_text()
    assert f"Flow run '{run.name}' - Deployment step 'set_working_directory' completed successfully" in log
    assert project_dir() != worker_cwd


def _running_intervals(client: Any, run_id: Any) -> list[tuple[datetime, datetime]]:
    """When the run was Running: from each Running state to the state after it."""
    states = sorted(client.read_flow_run_states(run_id), key=lambda s: s.timestamp)
    return [(state.timestamp, after.timestamp) for state, after in zip(states, states[1:])
            if state.type.value == "RUNNING"]


def test_more_stage_runs_than_the_limit_wait_their_turn_and_all_complete(stack: list[Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    asked = [run_deployment("kpis/kpis", timeout=0).id for _ in range(KPIS_LIMIT * 2 + 1)]
    with get_client(sync_client=True) as client:
        def finished() -> list[Any]:
            runs = [client.read_flow_run(run_id) for run_id in asked]
            return runs if all(r.state and r.state.is_final() for r in runs) else []

        runs = wait_until(finished, 600, "every kpis run to finish")
        assert [r.state_name for r in runs] == ["Completed"] * len(asked)
        histories = {run_id: client.read_flow_run_states(run_id) for run_id in asked}
        intervals = [i for run_id in asked for i in _running_intervals(client, run_id)]
    # The limit was reached: the server sent some runs back to wait for a slot ...
    assert any(s.name == "AwaitingConcurrencySlot" for states in histories.values() for s in states)
    # ... and at no moment did more than the limit run.
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))  # an end before a start at the same instant
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert len(intervals) == len(asked) and most <= KPIS_LIMIT


def test_every_model_gets_its_retrain_limit_on_the_stacks_server(stack: list[Any]) -> None:
    from prefect.client.orchestration import get_client

    from modelops.spec import load_all_specs

    with get_client(sync_client=True) as client:
        limits = {spec.name: client.read_global_concurrency_limit_by_name(f"retrain-{spec.name}").limit
                  for spec in load_all_specs()}
    assert len(limits) >= 2 and set(limits.values()) == {1}  # retrain_per_model of configs/platform.yaml
