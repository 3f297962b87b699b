"""The stage deployments of prefect.yaml as Prefect runner deployments (the file stays the one source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


def read_prefect_yaml(path: Path = PREFECT_YAML) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def runner_deployments(path: Path = PREFECT_YAML) -> list[Any]:
    """One RunnerDeployment per entry, with its description, tags, schedules, triggers and concurrency limit."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

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
