"""prefect.yaml rendered from the specs, and the stage deployments the runner serves.

The stage deployments, triggers and comments are a template (modelops/services/prefect_template.py); each spec adds
its own schedules (its monitor cron). The committed prefect.yaml is that render of configs/models/ (a test and
`modelops deployments --check` compare). The runner always renders in memory from the configured config directory,
so a model kept in MODELOPS_CONFIG_DIR is scheduled like the project's own, with one code path for both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from modelops.lifecycle import Stage
from modelops.services.concurrency import Concurrency, deployment_limit, load_platform_settings
from modelops.services.prefect_template import TEMPLATE
from modelops.spec import LifecycleSpec, load_all_specs

_SCHEDULES_MARKER = re.compile(r"^<<schedules:(\w+)>>$", re.MULTILINE)
_CONCURRENCY_MARKER = re.compile(r"^<<concurrency:(\w+)>>\n", re.MULTILINE)


def model_schedules(spec: LifecycleSpec) -> dict[Stage, list[dict[str, Any]]]:
    """The schedules a spec asks for, by stage deployment (today: its monitor cron, in UTC as the spec says)."""
    return {Stage.monitor: [{"cron": spec.monitoring.cron, "timezone": "UTC", "slug": f"monitor-{spec.name}",
                             "parameters": {"model": spec.name}}]}


def _schedule_lines(spec: LifecycleSpec, schedule: dict[str, Any]) -> list[str]:
    # Flow-style mappings and JSON-quoted strings keep the render readable and valid YAML for any value.
    parameters = ", ".join(f"{key}: {json.dumps(value)}" for key, value in schedule["parameters"].items())
    return [f"      # models/{spec.name}.yaml: monitoring.cron",
            f"      - cron: {json.dumps(schedule['cron'])}",
            f"        timezone: {schedule['timezone']}",
            f"        slug: {schedule['slug']}",
            f"        parameters: {{{parameters}}}"]


def render_prefect_yaml(specs: list[LifecycleSpec], concurrency: Concurrency | None = None) -> str:
    """prefect.yaml's text: the template with each stage's concurrency limit (configs/platform.yaml; the defaults
    when not given) and per-model schedules, models in name order."""
    limits = concurrency or Concurrency()

    def limit(match: re.Match[str]) -> str:
        bound = deployment_limit(match.group(1), limits)
        if bound is None:
            return ""
        return (f"    # At most {bound['limit']} at once (configs/platform.yaml); more wait in the queue.\n"
                f"    concurrency_limit: {{limit: {bound['limit']}, collision_strategy: {bound['collision_strategy']}}}\n")

    ordered = sorted(specs, key=lambda spec: spec.name)

    def schedules(match: re.Match[str]) -> str:
        stage = Stage(match.group(1))
        lines = [line for spec in ordered for schedule in model_schedules(spec).get(stage, [])
                 for line in _schedule_lines(spec, schedule)]
        return "\n".join(["    schedules:", *lines]) if lines else "    schedules: []"

    return _SCHEDULES_MARKER.sub(schedules, _CONCURRENCY_MARKER.sub(limit, TEMPLATE))


def rendered_config(config_dir: Path | None = None) -> dict[str, Any]:
    """prefect.yaml as rendered from the config directory (the configured one by default), parsed."""
    return yaml.safe_load(render_prefect_yaml(load_all_specs(config_dir),
                                              load_platform_settings(config_dir).concurrency))


def runner_deployments(config_dir: Path | None = None, project_dir: Path | None = None) -> list[Any]:
    """One RunnerDeployment per stage, with its description, tags, schedules (those of every spec in the config
    directory), triggers and concurrency limit."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    from modelops.settings import project_dir as configured_project_dir

    root = project_dir or configured_project_dir()
    out = []
    for entry in rendered_config(config_dir)["deployments"]:
        flow = load_flow_from_entrypoint(str(root / entry["entrypoint"]))
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), parameters=s.get("parameters"), slug=s.get("slug"))
                     for s in entry.get("schedules", [])]
        triggers = [DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
                    for t in entry.get("triggers", [])]
        bound = entry.get("concurrency_limit")
        deployment = flow.to_deployment(name=entry["name"], description=entry.get("description"),
                                        tags=entry.get("tags"), schedules=schedules or None, triggers=triggers or None,
                                        concurrency_limit=ConcurrencyLimitConfig(**bound) if bound else None,
                                        parameters=entry.get("parameters"))
        # As prefect.yaml says, relative to the project directory (the pull step's), whatever this process's cwd.
        deployment.entrypoint = entry["entrypoint"]
        out.append(deployment)
    return out
