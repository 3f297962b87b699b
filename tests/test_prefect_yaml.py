"""prefect.yaml is checked here because Prefect ignores unknown keys silently."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from modelops.spec import load_all_specs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
STAGES = ["register", "validate", "approve", "deploy", "score", "monitor", "sweep", "retrain", "retire", "report",
          "kpis"]


def deployments() -> dict[str, dict]:
    return {d["name"]: d for d in CONFIG["deployments"]}


def test_the_file_validates_against_prefects_own_model_with_no_unknown_keys() -> None:
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel, RawScheduleConfig

    PrefectYamlModel.model_validate(CONFIG)
    known = set(DeploymentConfig.model_fields)
    for deployment in CONFIG["deployments"]:
        assert set(deployment) <= known, f"{deployment['name']}: unknown keys {set(deployment) - known}"
        for schedule in deployment.get("schedules", []):
            RawScheduleConfig.model_validate(schedule)


def test_one_deployment_per_stage_named_like_its_file_and_flow() -> None:
    assert list(deployments()) == STAGES


@pytest.mark.parametrize("name", STAGES)
def test_every_entrypoint_loads_and_trigger_parameters_exist(name: str) -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.flows import load_flow_from_entrypoint

    deployment = deployments()[name]
    path, _, function = deployment["entrypoint"].partition(":")
    assert Path(path).stem == name == function
    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    assert flow.name == name
    parameters = set(inspect.signature(flow.fn).parameters)
    for trigger in deployment.get("triggers", []):
        DeploymentEventTrigger.model_validate({k: v for k, v in trigger.items() if k != "type"})
        assert all(e.startswith("modelops.model.") for e in trigger["expect"])
        assert set(trigger["parameters"]) <= parameters


def test_the_stage_chain_is_wired_by_events() -> None:
    from modelops import events

    expected = {"validate": [events.REGISTERED], "approve": [events.VALIDATED], "deploy": [events.APPROVED],
                "retrain": [events.DRIFT_DETECTED, events.PERFORMANCE_DEGRADED, events.BIAS_DETECTED]}
    wired = {name: trigger["expect"] for name, d in deployments().items() for trigger in d.get("triggers", [])}
    assert wired == expected


def test_every_model_is_monitored_on_its_specs_cron() -> None:
    schedules = {s["parameters"]["model"]: s["cron"] for s in deployments()["monitor"]["schedules"]}
    assert schedules == {spec.name: spec.monitoring.cron for spec in load_all_specs(ROOT / "configs")}
