"""A live stack for end-to-end tests: `modelops up` on free loopback ports over a temporary state directory, this
process pointed at its Prefect API for the duration, and everything stopped afterwards."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from tests.conftest import drain_prefect_workers


@contextmanager
def live_stack(home: Path, **up_options: Any) -> Iterator[tuple[str, list[Any], list[str]]]:
    """Yields the stack's Prefect API address, the services `up` started, and (filled in once the stack is down)
    the names of the services `down` stopped."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from modelops.services.stack import down, free_port, up
    from modelops.settings import load_settings

    saved = {k: os.environ.get(k) for k in ("MODELOPS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["MODELOPS_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    settings = load_settings()
    stopped: list[str] = []
    services = up(settings, prefect_port=free_port(), mlflow_port=free_port(), **up_options)
    api_url = next(f"{s.url}/api" for s in services if s.name == "prefect-server")
    try:
        # Prefect keeps one events worker per process whatever the API address (its key is the client class
        # alone): drained here, the next event starts one for the live server, and drained again before the live
        # server stops, the tests after these start one for the session's server again. Otherwise the stage events
        # of these tests go to the session's server, and later tests' events to a server that is gone.
        drain_prefect_workers(timeout=60)
        with temporary_settings({PREFECT_API_URL: api_url}):
            try:
                yield api_url, services, stopped
            finally:
                drain_prefect_workers(timeout=60)
    finally:
        stopped += down(settings)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stage_runs(deployment: str) -> list[Any]:
    """The runs of a stage deployment that have started (not the scheduled ones)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter, \
        FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    started = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
        any_=[t for t in StateType if t != StateType.SCHEDULED])))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=started, deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment])))


def run_states(ids: list[Any]) -> list[str | None]:
    """The state names of given flow runs, read one by one: a run still scheduled or waiting for a concurrency
    slot is absent from stage_runs(), so a probe over that list alone can be satisfied before the run has started."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [client.read_flow_run(run_id).state_name for run_id in ids]


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
