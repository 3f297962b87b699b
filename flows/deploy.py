"""deploy: make an approved version serve as @champion (or @challenger), recorded as a deployment."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lineage_events import STAGE_HOOKS
from modelops.errors import NotApprovedError, RetiredVersionError
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.platform import get_platform
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import end_challenger_role_task, mirror_serving_task, record_deployment_task


class Deployed(BaseModel):
    model: str
    version: str
    role: str
    previous: str | None
    changed: bool
    targets: list[str] = []  # where it serves: batch scoring, the online gateway


@flow(name="deploy", log_prints=True, **STAGE_HOOKS)
def deploy(model: ModelName, version: Version, role: Literal["champion", "challenger"] = "champion") -> Deployed:
    """The store's deployment record is what makes the version serve; MLflow's aliases then mirror it."""
    handed, result = hand_over(Stage.deploy, dict(model=model, version=version, role=role))
    return result if handed else standard_deploy(resolve_model_version(model, version), role)


def require_deployable(mv: ModelVersion) -> None:
    """Only a live, approved version may serve (the store decides, never an MLflow tag)."""
    if mv.governed.retired:
        raise RetiredVersionError(f"{mv.model} v{mv.version} is retired and cannot be deployed",
                                  "register and approve a new version")
    status = get_platform().store.approval_status(mv.model, mv.version)
    if status != ApprovalStatus.approved:
        raise NotApprovedError(f"{mv.model} v{mv.version} is not approved (approval: {status or 'none'})",
                               f"run validate and approve for v{mv.version} first")


def standard_deploy(mv: ModelVersion, role: str) -> Deployed:
    platform = get_platform()
    require_deployable(mv)
    entry = record_deployment_task(platform, mv, role)
    end_challenger_role_task(platform, mv, role)
    replaced = entry.evidence["replaced"] if entry else []
    previous = replaced[0] if replaced else None
    mirror_serving_task(platform, mv.model, standby=previous)
    if entry is None:
        return Deployed(model=mv.model, version=mv.version, role=role, previous=mv.version, changed=False,
                        targets=list(mv.spec.deploy.targets))
    print(f"{mv.model} v{mv.version} now serves as @{role} ({', '.join(mv.spec.deploy.targets)})"
          + (f" (replacing v{previous})" if previous else ""))
    return Deployed(model=mv.model, version=mv.version, role=role, previous=previous, changed=True,
                    targets=list(mv.spec.deploy.targets))
