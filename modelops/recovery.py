"""Closing what a killed process left open.

A process that is killed (kill -9, the OOM killer, a lost container) cannot finish its Prefect flow run or its
MLflow run: both would show RUNNING forever. So each run names its owner (host, pid and the pid's start time, since
pids are reused) when it starts, and the next start of a stage closes the runs whose owner is gone: flow runs
become Crashed, MLflow runs KILLED. Only runs owned on this host are judged; another host's processes are not
visible from here.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Flow run tags: one names the host (so a query can select this host's runs), one the owning process.
HOST_TAG_PREFIX = "modelops.host:"
OWNER_TAG_PREFIX = "modelops.owner:"
# MLflow run tags.
MLFLOW_HOST = "modelops.owner.host"
MLFLOW_PID = "modelops.owner.pid"
MLFLOW_STARTED = "modelops.owner.started"
OPEN_FLOW_RUN_STATES = ("RUNNING", "PENDING")


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the process's start time in clock ticks since boot; "" where the system does not say

    @classmethod
    def current(cls) -> "Owner":
        return cls(host=socket.gethostname(), pid=os.getpid(), started=_start_ticks(os.getpid()))

    def is_gone(self) -> bool:
        """True only when this host can tell: the pid is not alive, or it now belongs to another process."""
        if self.host != socket.gethostname():
            return False
        if not pid_alive(self.pid):
            return True
        return bool(self.started) and _start_ticks(self.pid) not in ("", self.started)

    def text(self) -> str:
        """host:pid/started, as a claim in the governance store names its owner."""
        return f"{self.host}:{self.pid}/{self.started}"

    @classmethod
    def from_text(cls, text: str) -> "Owner | None":
        host, _, process = text.rpartition(":")
        pid, _, started = process.partition("/")
        return cls(host=host, pid=int(pid), started=started) if host and pid.isdigit() else None

    def flow_run_tags(self) -> list[str]:
        return [f"{HOST_TAG_PREFIX}{self.host}", f"{OWNER_TAG_PREFIX}{self.pid}/{self.started}"]

    @classmethod
    def from_flow_run_tags(cls, tags: Iterable[str]) -> "Owner | None":
        host = next((t.removeprefix(HOST_TAG_PREFIX) for t in tags if t.startswith(HOST_TAG_PREFIX)), None)
        owner = next((t.removeprefix(OWNER_TAG_PREFIX) for t in tags if t.startswith(OWNER_TAG_PREFIX)), None)
        if host is None or owner is None:
            return None
        pid, _, started = owner.partition("/")
        return cls(host=host, pid=int(pid), started=started) if pid.isdigit() else None

    def mlflow_tags(self) -> dict[str, str]:
        return {MLFLOW_HOST: self.host, MLFLOW_PID: str(self.pid), MLFLOW_STARTED: self.started}

    @classmethod
    def from_mlflow_tags(cls, tags: dict[str, str]) -> "Owner | None":
        pid = tags.get(MLFLOW_PID, "")
        if MLFLOW_HOST not in tags or not pid.isdigit():
            return None
        return cls(host=tags[MLFLOW_HOST], pid=int(pid), started=tags.get(MLFLOW_STARTED, ""))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def _start_ticks(pid: int) -> str:
    if not sys.platform.startswith("linux"):
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 is the start time; the command name (field 2) may hold spaces, so count from its closing paren.
    return stat.rpartition(")")[2].split()[19]


def owner_tags() -> dict[str, str]:
    """Tags for an MLflow run this process starts."""
    return Owner.current().mlflow_tags()


# --- closing runs of dead owners ------------------------------------------------------------------------------
def crash_orphaned_flow_runs() -> list[str]:
    """Mark this host's RUNNING/PENDING flow runs whose owning process is gone as Crashed; returns their names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
                                                FlowRunFilterTags)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    here = Owner.current()
    crashed = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[here.flow_run_tags()[0]]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in OPEN_FLOW_RUN_STATES]))))
        for run in runs:
            owner = Owner.from_flow_run_tags(run.tags)
            if owner is None or not owner.is_gone():
                continue
            message = f"its process ({owner.host} pid {owner.pid}) ended without finishing the run"
            # force: the run's own engine is gone, so no orchestration rule can expect a transition from it.
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(run.name)
    return crashed


def kill_orphaned_mlflow_runs(client: "MlflowClient", experiment_ids: list[str] | None = None) -> list[str]:
    """Mark this host's RUNNING MLflow runs whose owning process is gone as KILLED; returns their ids."""
    ids = experiment_ids if experiment_ids is not None else [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    runs = client.search_runs(ids, filter_string=f"attributes.status = 'RUNNING' and "
                                                 f"tags.`{MLFLOW_HOST}` = '{socket.gethostname()}'")
    killed = []
    for run in runs:
        owner = Owner.from_mlflow_tags(run.data.tags)
        if owner is not None and owner.is_gone():
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    return killed


def recover_orphaned_runs() -> list[str]:
    """Close every run of this host whose process is gone; one line per run closed, for the operator."""
    from modelops.platform import get_platform

    lines = [f"flow run {name!r} marked Crashed: its process is gone" for name in crash_orphaned_flow_runs()]
    lines += [f"MLflow run {run_id} marked KILLED: its process is gone"
              for run_id in kill_orphaned_mlflow_runs(get_platform().catalog.client)]
    return lines
