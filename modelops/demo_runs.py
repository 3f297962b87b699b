"""How `make demo` runs its stages: in this process (calling the flows), or, with `modelops up` running for the
state directory, through the stack's stage deployments, so that its runs appear under each deployment in the
Prefect UI together with the runs the triggers chain from them (register -> validate -> approve -> deploy; a breach
that asks for retraining -> retrain). Where prefect.yaml chains stages, the demo starts the first one and waits
for the runs the triggers start: starting them itself would hide the chain and run each stage twice."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol, get_type_hints

from modelops.errors import ModelOpsError
from modelops.lifecycle import ApprovalStatus
from modelops.services.stack import running_api_url, running_services
from modelops.settings import Settings, private_to_us

# A stage run may queue behind others on the two cores (training, a monitor's reports): generous, but finite.
STAGE_TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 1.0


class StageRuns(Protocol):
    """The stages the demo runs, whichever way they run."""

    description: str

    def onboard(self, model: str) -> str: ...

    def score(self, model: str, input_path: str) -> Any: ...

    def monitor(self, model: str, window_end: datetime, window_days: int) -> Any: ...

    def retrain(self, model: str, breach: Any | None = None) -> Any: ...


def not_onboarded(model: str, version: str, validated: Any | None, approved: Any | None) -> SystemExit:
    """The demo's message when a version stops before serving: it failed validation, or was not approved."""
    if validated is not None:
        return SystemExit(f"{model} v{version} failed validation: {validated.failures}")
    return SystemExit(f"{model} v{version} was not approved: {approved.reasons}")


class InProcess:
    """Each stage's flow called here: a run of its own on whatever Prefect API the CLI chose, outside any
    deployment (without `modelops up` nothing serves the deployments, and no trigger listens)."""

    description = "in this process"

    def onboard(self, model: str) -> str:
        from flows.approve import approve
        from flows.deploy import deploy
        from flows.register import register
        from flows.validate import validate

        registered = register(model=model)
        validated = validate(model=model, version=registered.version)
        if not validated.passed:
            raise not_onboarded(model, registered.version, validated, None)
        approved = approve(model=model, version=registered.version)
        if approved.status != ApprovalStatus.approved:
            raise not_onboarded(model, registered.version, None, approved)
        deploy(model=model, version=registered.version, role="champion")
        return registered.version

    def score(self, model: str, input_path: str) -> Any:
        from flows.score import score

        return score(model=model, input_path=input_path)

    def monitor(self, model: str, window_end: datetime, window_days: int) -> Any:
        from flows.monitor import monitor

        return monitor(model=model, window_end=window_end, window_days=window_days)

    def retrain(self, model: str, breach: Any | None = None) -> Any:
        from flows.retrain import retrain

        return retrain(model=model)


@dataclass
class ThroughDeployments:
    """Each stage as a run of its deployment on the stack's server, executed by the stage runner; chained stages
    are the runs its triggers start, waited for here."""

    api_url: str
    runner_log: Path
    results: Path  # the stage runner's result folder (Settings.runner_results)
    timeout: float = STAGE_TIMEOUT_SECONDS
    runs: list[Any] = field(default_factory=list)  # every run of the demo, started or chained, in order
    # each model's latest monitor run: the retrain its breach asks for is the one created after it
    monitor_runs: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return f"through the deployments of the Prefect server at {self.api_url}"

    def onboard(self, model: str) -> str:
        registered_run = self._start("register", {"model": model})
        registered = self._result("register", registered_run)
        version = registered.version
        chained = {"model": model, "version": version}
        validate_run = self._chained("validate", chained, after=registered_run)
        validated = self._result("validate", validate_run)
        if not validated.passed:
            raise not_onboarded(model, version, validated, None)
        approve_run = self._chained("approve", chained, after=validate_run)
        approved = self._result("approve", approve_run)
        if approved.status != ApprovalStatus.approved:
            raise not_onboarded(model, version, None, approved)
        self._result("deploy", self._chained("deploy", chained, after=approve_run))
        return version

    def score(self, model: str, input_path: str) -> Any:
        return self._result("score", self._start("score", {"model": model, "input_path": input_path}))

    def monitor(self, model: str, window_end: datetime, window_days: int) -> Any:
        run = self._start("monitor", {"model": model, "window_end": window_end, "window_days": window_days})
        self.monitor_runs[model] = run
        return self._result("monitor", run)

    def retrain(self, model: str, breach: Any | None = None) -> Any:
        # A breach that asked for retraining fired the retrain deployment's trigger: that run is the retrain.
        if breach is not None and breach.retrain_requested:
            return self._result("retrain", self._chained("retrain", {"model": model}, after=self.monitor_runs[model]))
        return self._result("retrain", self._start("retrain", {"model": model}))

    def _start(self, stage: str, parameters: dict[str, Any]) -> Any:
        from prefect.deployments import run_deployment

        run = run_deployment(f"{stage}/{stage}", parameters=parameters, timeout=self.timeout, poll_interval=1,
                             as_subflow=False)
        self.runs.append(run)
        return run

    def _chained(self, stage: str, parameters: dict[str, str], after: Any) -> Any:
        """The run of `stage`'s deployment with these parameters that a trigger created after `after` was
        created, once it has finished."""
        seen = {run.id for run in self.runs}

        def finished_run() -> Any | None:
            candidates = [r for r in deployment_runs(stage) if r.id not in seen and r.created >= after.created
                          and matches(r.parameters, parameters)]
            done = [r for r in candidates if r.state is not None and r.state.is_final()]
            return min(done, key=lambda r: r.created) if done else None

        run = wait_for(finished_run, self.timeout, ModelOpsError(
            f"no finished {stage} run for {parameters} within {self.timeout:.0f} s after the "
            f"{after.name} run: the {stage} deployment's trigger should have started one",
            f"read the stage runner's log {self.runner_log} and the Automations page of the Prefect UI "
            f"({self.api_url.removesuffix('/api')})"))
        self.runs.append(run)
        return run

    def _result(self, stage: str, run: Any) -> Any:
        if run.state is None or not run.state.is_completed():
            state = run.state.name if run.state is not None else "no state"
            raise ModelOpsError(f"the {stage} run {run.name} ended {state}" if run.state and run.state.is_final()
                                else f"the {stage} run {run.name} did not finish within {self.timeout:.0f} s "
                                     f"({state})",
                                f"read the stage runner's log {self.runner_log} and the run in the Prefect UI "
                                f"({self.api_url.removesuffix('/api')}/runs/flow-run/{run.id})")
        return stage_result(stage, run, self.results)


def stage_result(stage: str, run: Any, results: Path) -> Any:
    """What a completed run of a stage's flow returned, as that flow's return type. The runner keeps it as JSON
    (modelops/services/runner.py); its class is named after the module the runner loaded the flow file as, which
    this process does not have, so the JSON is read here and validated against the flow's own return type."""
    metadata = run.state.data
    if metadata is None or getattr(metadata, "storage_key", None) is None:
        raise ModelOpsError(f"the {stage} run {run.name} kept no result",
                            "restart the stack (`modelops down`, `modelops up`): its stage runner keeps results")
    # The key comes from the Prefect API, which anyone on this machine may write to: read only a file inside the
    # runner's result folder that no one else could have put there. That folder is the stack's, never this
    # process's Prefect setting: a shell with another PREFECT_HOME would look in the wrong place.
    storage = results.resolve()
    path = (storage / metadata.storage_key).resolve()
    if not path.is_relative_to(storage):
        raise ModelOpsError(f"the {stage} run {run.name} names a result outside the runner's folder {storage}",
                            "check who else uses this Prefect server; restart the stack (`modelops down`, "
                            "`modelops up`)")
    private_to_us(path, f"the result of the {stage} run {run.name}")
    data = json.loads(path.read_bytes())
    return return_type(stage).model_validate(data["data"] if "__class__" in data else data)


def return_type(stage: str) -> Any:
    """The return type of the stage's flow (flows/<stage>.py), a pydantic model."""
    import importlib

    function = getattr(importlib.import_module(f"flows.{stage}"), stage).fn
    return get_type_hints(function)["return"]


def matches(actual: dict[str, Any], expected: dict[str, str]) -> bool:
    """Trigger-made parameters are templated strings: compare as strings."""
    return all(str(actual.get(key)) == value for key, value in expected.items())


def deployment_runs(stage: str) -> list[Any]:
    """Every flow run of a stage's deployment (`<stage>/<stage>`), newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[stage])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_DESC)


def wait_for(probe: Callable[[], Any], timeout: float, error: Exception, poll_seconds: float = POLL_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error
        time.sleep(poll_seconds)


def choose_runs(up_api_url: str | None, configured_api_url: str | None, runner_log: Path,
                results: Path) -> StageRuns:
    """Through the deployments when `modelops up` runs for this state directory and Prefect talks to its server
    (the CLI points Prefect there unless PREFECT_API_URL names another one, whose deployments may not be ours);
    else in this process."""
    if up_api_url and configured_api_url and up_api_url.rstrip("/") == configured_api_url.rstrip("/"):
        return ThroughDeployments(up_api_url, runner_log, results)
    return InProcess()


def demo_stage_runs(settings: Settings) -> StageRuns:
    """The way this demo runs its stages, from what runs now for the state directory."""
    from prefect.settings import PREFECT_API_URL

    runner = next((s for s in running_services(settings) if s.name == "stage-runner"), None)
    runner_log = Path(runner.log) if runner else settings.home / "logs" / "stage-runner.log"
    return choose_runs(running_api_url(settings), PREFECT_API_URL.value(), runner_log, settings.runner_results)
