"""deploy: make an approved version serve as @champion (or @challenger), recorded as a deployment."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import NotApprovedError, RetiredVersionError
from flows.parameters import ModelName, Version
from modelops.platform import current_actor, get_platform
from modelops.spec import load_spec
from tasks.approval import APPROVED
from tasks.audit import record_stage
from tasks.integrity import mirror_serving, require_governed


class Deployed(BaseModel):
    model: str
    version: str
    role: str
    previous: str | None
    changed: bool


@flow(name="deploy", log_prints=True)
def deploy(model: ModelName, version: Version, role: Literal["champion", "challenger"] = "champion") -> Deployed:
    """The store's deployment record is what makes the version serve; MLflow's aliases then mirror it."""
    spec = load_spec(model)
    platform = get_platform()
    store = platform.store
    governed = require_governed(platform, spec.name, version)
    if governed.retired:
        raise RetiredVersionError(f"{model} v{version} is retired and cannot be deployed",
                                  "register and approve a new version")
    status = store.approval_status(spec.name, version)
    if status != APPROVED:
        raise NotApprovedError(f"{model} v{version} is not approved (approval: {status or 'none'})",
                               f"run validate and approve for v{version} first")
    entry = record_stage(stage="deploy", action=f"serve-as-{role}", model=spec.name, version=version,
                         outcome="deployed", evidence={"role": role, "strategy": spec.deploy.strategy,
                                                       "targets": spec.deploy.targets},
                         event=events.DEPLOYED,
                         change=store.start_deployment(spec.name, version, role, spec.deploy.strategy,
                                                       current_actor()))
    if role == CHAMPION and store.serving_version(spec.name, CHALLENGER) == version:
        record_stage(stage="deploy", action="end-challenger", model=spec.name, version=version, outcome="ended",
                     evidence={"reason": "promoted to champion"}, event=None,
                     change=store.end_role(spec.name, CHALLENGER, f"v{version} promoted to champion"))
    replaced = entry.evidence["replaced"] if entry else []
    previous = replaced[0] if replaced else None
    mirror_serving(platform, spec.name, standby=previous)
    if entry is None:
        return Deployed(model=model, version=version, role=role, previous=version, changed=False)
    print(f"{model} v{version} now serves as @{role}" + (f" (replacing v{previous})" if previous else ""))
    return Deployed(model=model, version=version, role=role, previous=previous, changed=True)
