"""`modelops up --workers N`: the stage deployments on a Prefect `process` work pool, executed by N workers.

The deployments are prefect.yaml's, rendered from the configured config directory exactly as the runner renders
them (modelops.services.deployments): same names, parameters, schedules, triggers and concurrency limits, plus
prefect.yaml's pull steps. A worker runs each flow run's pull steps first: `set_working_directory` to
MODELOPS_PROJECT_DIR, resolved from the worker's own environment at run time, so a worker on another machine with the
project checked out elsewhere (or a `git_clone` pull step instead) runs the same deployments. The workers here are
started in a folder of their own under the state directory, so that a run that did not step into the project's
folder would fail to find its flow file at once, not work by accident.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from modelops.errors import ModelOpsError


class PullSteps:
    """prefect.yaml's `pull:` section as the code storage of a deployment applied from Python: Prefect records
    `to_pull_step()` as the deployment's pull steps and a worker runs them before each flow run. Nothing is pulled
    here: the worker's machine does that."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps

    def set_base_path(self, path: Path) -> None:
        pass

    @property
    def pull_interval(self) -> int | None:
        return None

    @property
    def destination(self) -> Path:
        return Path.cwd()

    async def pull_code(self) -> None:
        pass

    def to_pull_step(self) -> list[dict[str, Any]]:
        return self.steps

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, PullSteps) and other.steps == self.steps


def work_pool_name(config: dict[str, Any]) -> str:
    """The work pool prefect.yaml's stage deployments name (one for all)."""
    pools = {entry["work_pool"]["name"] for entry in config["deployments"]}
    if len(pools) != 1:
        raise ModelOpsError(f"prefect.yaml's stage deployments name {len(pools)} work pools ({sorted(pools)})",
                            "give every stage deployment the one work pool in prefect_template.py")
    return pools.pop()


def deploy_to_pool(config_dir: Path | None = None) -> tuple[str, list[str]]:
    """Create the process work pool if missing and apply every stage deployment to it (idempotent: applying again
    updates them in place, triggers included); the pool's name and the deployments' names. Talks to the Prefect API
    of this process's settings."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from modelops.services.concurrency import apply_model_limits
    from modelops.services.deployments import rendered_config, runner_deployments

    config = rendered_config(config_dir)
    pool = work_pool_name(config)
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            pass
    names = []
    for deployment in runner_deployments(config_dir):
        deployment.storage = PullSteps(config["pull"])
        deployment.apply(work_pool_name=pool)
        names.append(deployment.name)
    apply_model_limits(config_dir)
    return pool, names


def worker_command(pool: str, name: str) -> list[str]:
    """What starts one worker: this environment's `prefect worker start` on the pool."""
    return [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
            "--name", name]


def start_workers(count: int, pool: str, env: dict[str, str], logs: Path, workdir: Path,
                  spawn: Callable[..., subprocess.Popen]) -> list[tuple[str, subprocess.Popen, Path]]:
    """Start `count` workers on the pool in `workdir`, each named modelops-worker-<n> with its log in logs/;
    (name, process, log) of each."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = []
    for index in range(1, count + 1):
        name = f"modelops-worker-{index}"
        log = logs / f"{name}.log"
        started.append((name, spawn(worker_command(pool, name), env, log, cwd=workdir), log))
    return started


def wait_for_workers(pool: str, started: list[tuple[str, subprocess.Popen, Path]], timeout: float = 120) -> None:
    """Until the server lists every worker started as online."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process, log in started:
            if process.poll() is not None:
                raise ModelOpsError(f"worker {name} exited with code {process.returncode}", f"read its log: {log}")
        with get_client(sync_client=True) as client:
            online = {w.name for w in client.read_workers_for_work_pool(pool) if w.status == "ONLINE"}
        if {name for name, _, _ in started} <= online:
            return
        time.sleep(1)
    raise ModelOpsError(f"the workers of pool {pool} did not come online within {timeout:.0f} s",
                        f"read their logs: {', '.join(str(log) for _, _, log in started)}")


def worker_env(stage_env: dict[str, str], poll_seconds: int, project: Path) -> dict[str, str]:
    """A worker's environment (its flow runs inherit it): the stage runner's, how often it asks for work, results
    kept as the runner keeps them, and the project directory its runs' pull step enters."""
    from modelops.services.runner import RESULT_ENV

    return {**RESULT_ENV, **stage_env, "PREFECT_WORKER_QUERY_SECONDS": str(poll_seconds),
            "MODELOPS_PROJECT_DIR": str(project)}


def start_stage_workers(settings: Any, count: int, stage_env: dict[str, str], poll_seconds: int) -> list[Any]:
    """`up --workers N`: apply the stage deployments to their work pool on the stack's server, then start N workers
    in <state home>/workers (not the project's folder: the pull step is what takes a run there); their records."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from modelops.services.stack import Service, spawn, stop_services

    if count < 1:
        raise ModelOpsError(f"--workers {count}: at least one worker is needed to run the stages",
                            "give --workers 1 or more, or leave it out for the single stage runner")
    with temporary_settings({PREFECT_API_URL: stage_env["PREFECT_API_URL"]}):
        pool, _ = deploy_to_pool(settings.config_dir)
        env = worker_env(stage_env, poll_seconds, settings.project_dir)
        started = start_workers(count, pool, env, settings.home / "logs", settings.home / "workers", spawn)
        services = [Service.of(name, process, stage_env["PREFECT_API_URL"], str(log))
                    for name, process, log in started]
        try:
            wait_for_workers(pool, started)
        except BaseException:
            stop_services(services)
            raise
    return services
