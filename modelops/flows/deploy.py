"""deploy: make an approved version serve as @champion (or @challenger), recorded as a deployment."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION, TAG_STATE
from modelops.errors import NotApprovedError, RetiredVersionError
from modelops.flows.parameters import ModelName, Version
from modelops.platform import current_actor, get_platform
from modelops.spec import load_spec
from modelops.tasks.approval import APPROVED
from modelops.tasks.audit import record_stage


class Deployed(BaseModel):
    model: str
    version: str
    role: str
    previous: str | None
    changed: bool


@flow(name="deploy", log_prints=True)
def deploy(model: ModelName, version: Version, role: Literal["champion", "challenger"] = "champion") -> Deployed:
    spec = load_spec(model)
    platform = get_platform()
    catalog, store = platform.catalog, platform.store
    info = catalog.version(spec.name, version)
    if info.retired:
        raise RetiredVersionError(f"{model} v{version} is retired and cannot be deployed",
                                  "register and approve a new version")
    status = store.approval_status(spec.name, version)
    if status != APPROVED:
        raise NotApprovedError(f"{model} v{version} is not approved (approval: {status or 'none'})",
                               f"run validate and approve for v{version} first")
    previous = catalog.version_for_alias(spec.name, role)
    if previous != version:
        catalog.set_alias(spec.name, role, version)
    if role == CHAMPION and catalog.version_for_alias(spec.name, CHALLENGER) == version:
        catalog.delete_alias(spec.name, CHALLENGER)
    catalog.set_tags(spec.name, version, {TAG_STATE: "serving" if role == CHAMPION else "challenger"})
    if previous not in (None, version) and not catalog.version(spec.name, previous).retired:
        catalog.set_tags(spec.name, previous, {TAG_STATE: "standby"})
    # The record is the last step: a run that stopped after moving the alias finishes the job when re-run.
    deployment_id = store.start_deployment(spec.name, version, role, spec.deploy.strategy, current_actor())
    if deployment_id is None:
        return Deployed(model=model, version=version, role=role, previous=previous, changed=False)
    record_stage(stage="deploy", action=f"set-alias-{role}", model=spec.name, version=version, outcome="deployed",
                 evidence={"role": role, "previous": previous if previous != version else None,
                           "strategy": spec.deploy.strategy, "targets": spec.deploy.targets,
                           "deployment_id": deployment_id},
                 event=events.DEPLOYED)
    print(f"{model} v{version} now serves as @{role}" + (f" (replacing v{previous})" if previous else ""))
    return Deployed(model=model, version=version, role=role, previous=previous, changed=True)
