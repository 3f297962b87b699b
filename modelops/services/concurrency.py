"""How many stage runs may run at once (configs/platform.yaml, `concurrency:`), so that a storm of drift breaches
cannot start hundreds of retrains together.

Two bounds, both enforced by the Prefect server, whoever executes the runs (the laptop's runner or any number of
workers on any machines):
- per stage: the stage deployment's `concurrency_limit` with collision strategy ENQUEUE, rendered into prefect.yaml.
  The server refuses a run of that deployment the move to Pending while `limit` runs hold a slot and puts it back in
  the queue (AwaitingConcurrencySlot); a worker or runner picks it up once a slot frees. Nothing is dropped.
  This is what bounds *flow runs*: in Prefect 3 tag-based concurrency limits apply to task runs only, and a work
  pool/queue limit bounds only the runs of that pool (the runner of `modelops up` without --workers has none).
- per model: a global concurrency limit `retrain-<model>` that the retrain flow holds while it trains, compares
  and promotes (flows/retrain.py). Deployment limits cannot tell models apart (the model is a parameter of the
  one retrain deployment), so this one is taken inside the run: a second retrain of the same model starts, waits
  for the slot, and then finds the first one's challenger already judged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from modelops.services.prefect_template import TEMPLATE
from modelops.spec import Strict, validated_yaml

PLATFORM_FILE = "platform.yaml"
STAGE_DEPLOYMENTS = re.findall(r"^  - name: (\w+)$", TEMPLATE, re.MULTILINE)


def retrain_limit_name(model: str) -> str:
    """The global concurrency limit that bounds the retrains of one model."""
    return f"retrain-{model}"


class Concurrency(Strict):
    stages: dict[str, int] = Field(
        default_factory=lambda: {"register": 4, "validate": 4, "approve": 8, "deploy": 4, "score": 4, "monitor": 8,
                                 "sweep": 1, "retrain": 4, "retire": 4, "report": 4, "kpis": 1},
        description="Runs of a stage deployment at once, across every runner and worker; further runs wait in "
                    "the queue (ENQUEUE), none is dropped. A stage left out is unbounded.")
    retrain_per_model: int = Field(1, ge=1, le=100, description="Retrains of one model at once (the global "
                                                                "concurrency limit retrain-<model>).")

    @model_validator(mode="after")
    def _known_stages(self) -> "Concurrency":
        unknown = sorted(set(self.stages) - set(STAGE_DEPLOYMENTS))
        if unknown:
            raise ValueError(f"no stage deployment named {', '.join(unknown)}: the stages are "
                             f"{', '.join(STAGE_DEPLOYMENTS)}")
        low = sorted(name for name, limit in self.stages.items() if limit < 1)
        if low:
            raise ValueError(f"limit of {', '.join(low)} below 1: a stage that may never run; leave it out to "
                             "leave it unbounded")
        return self


class PlatformSettings(Strict):
    concurrency: Concurrency = Field(default_factory=Concurrency, description="Bounds on runs at once.")


def load_platform_settings(config_dir: Path | None = None) -> PlatformSettings:
    """configs/platform.yaml of the config directory (the configured one by default); the defaults without one."""
    from modelops.settings import load_settings

    path = (config_dir or load_settings().config_dir) / PLATFORM_FILE
    return validated_yaml(path, PlatformSettings) if path.is_file() else PlatformSettings()


def deployment_limit(stage: str, concurrency: Concurrency) -> dict[str, Any] | None:
    """The `concurrency_limit` of a stage deployment in prefect.yaml, or None for an unbounded stage."""
    limit = concurrency.stages.get(stage)
    return None if limit is None else {"limit": limit, "collision_strategy": "ENQUEUE"}


def apply_model_limits(config_dir: Path | None = None) -> None:
    """ensure_model_limits for every spec of the config directory, as its platform.yaml says."""
    from modelops.spec import load_all_specs

    ensure_model_limits([spec.name for spec in load_all_specs(config_dir)],
                        load_platform_settings(config_dir).concurrency)


def ensure_retrain_limit(model: str) -> None:
    """The model's retrain limit, created at its first retrain when `up` did not know the model (a spec added while
    the stack runs): otherwise its retrains would run unbounded until the next `up`. An existing limit is left as
    it is; two retrains creating it at once both go on with the one that won."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = retrain_limit_name(model)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                    name=name, limit=load_platform_settings().concurrency.retrain_per_model))
            except ObjectAlreadyExists:
                pass


def ensure_model_limits(models: list[str], concurrency: Concurrency) -> None:
    """Create or update the global concurrency limit retrain-<model> of every model (idempotent). The retrain flow
    takes it non-strictly: without a limit on the server (a flow called in-process) it runs unbounded."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for model in models:
            name = retrain_limit_name(model)
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                    name=name, limit=concurrency.retrain_per_model))
            else:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(
                    limit=concurrency.retrain_per_model, active=True))
