"""The stage deployments of prefect.yaml as Prefect runner deployments (the file stays the one source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelops.settings import project_dir


def prefect_yaml() -> Path:
    return project_dir() / "prefect.yaml"


def read_prefect_yaml(path: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((path or prefect_yaml()).read_text())


def runner_deployments(path: Path | None = None) -> list[Any]:
    """One RunnerDeployment per entry, with its description, tags, schedules, triggers and concurrency limit."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    path = path or prefect_yaml()
    out = []
    for entry in read_prefect_yaml(path)["deployments"]:
        flow = load_flow_from_entrypoint(str(path.parent / entry["entrypoint"]))
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), parameters=s.get("parameters"), slug=s.get("slug"))
                     for s in entry.get("schedules", [])]
        triggers = [DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
                    for t in entry.get("triggers", [])]
        out.append(flow.to_deployment(name=entry["name"], description=entry.get("description"),
                                      tags=entry.get("tags"), schedules=schedules or None, triggers=triggers or None,
                                      concurrency_limit=entry.get("concurrency_limit"),
                                      parameters=entry.get("parameters")))
    return out
