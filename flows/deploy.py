"""deploy: make an approved version serve as @champion (or @challenger), recorded as a deployment."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import NotApprovedError, RetiredVersionError
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.lineage_events import STAGE_HOOKS
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import end_challenger_role_task, mirror_serving_task, record_deployment_task
from tasks.comparison import Comparison
from tasks.promotion import compare_challenger_task, end_challenger_task, entry_role, require_promotable_task
from tasks.stage_artifacts import comparison_artifact, deployment_artifact, holdout_metrics_of, publish


class Deployed(BaseModel):
    model: str
    version: str
    role: str
    previous: str | None
    changed: bool
    targets: list[str] = []  # where it serves: batch scoring, the online gateway
    promoted: bool = False  # it entered as challenger and won the comparison at once


class Settled(BaseModel):
    """What comparing a serving challenger with the champion did."""

    model: str
    challenger: str
    outcome: Literal["promoted", "champion-kept", "waiting"]
    retired: str | None = None


@flow(name="deploy", log_prints=True, **STAGE_HOOKS)
def deploy(model: ModelName, version: Version, role: Literal["champion", "challenger"] | None = None,
           reason: str | None = None) -> Deployed:
    """The store's deployment record is what makes the version serve; MLflow's aliases then mirror it. Without a
    role (the onboarding chain), the first version of a model becomes champion and a later one challenger, which
    the comparison on recent labelled traffic promotes. `reason`: a person's recorded decision to promote a version
    that has not won a comparison, where the spec's deploy.promotion allows it."""
    handed, result = hand_over(Stage.deploy, dict(model=model, version=version, role=role, reason=reason))
    return result if handed else standard_deploy(resolve_model_version(model, version), role, reason)


def require_deployable(mv: ModelVersion) -> None:
    """Only a live, approved version may serve (the store decides, never an MLflow tag)."""
    if mv.governed.retired:
        raise RetiredVersionError(f"{mv.model} v{mv.version} is retired and cannot be deployed",
                                  "register and approve a new version")
    status = get_platform().store.approval_status(mv.model, mv.version)
    if status != ApprovalStatus.approved:
        raise NotApprovedError(f"{mv.model} v{mv.version} is not approved (approval: {status or 'none'})",
                               f"run validate and approve for v{mv.version} first")


def standard_deploy(mv: ModelVersion, role: str | None = None, reason: str | None = None) -> Deployed:
    platform = get_platform()
    require_deployable(mv)
    chosen = role or entry_role(platform, mv.model, mv.version)
    require_promotable_task(platform, mv.spec, mv.version, chosen, reason)
    entry = record_deployment_task(platform, mv, chosen, reason)
    end_challenger_role_task(platform, mv, chosen)
    replaced = entry.evidence["replaced"] if entry else []
    previous = replaced[0] if replaced else None
    mirror_serving_task(platform, mv.model, standby=previous)
    deployed = Deployed(model=mv.model, version=mv.version, role=chosen, previous=previous if entry else mv.version,
                        changed=entry is not None, targets=list(mv.spec.deploy.targets))
    if entry is not None:
        print(f"{mv.model} v{mv.version} now serves as @{chosen} ({', '.join(mv.spec.deploy.targets)})"
              + (f" (replacing v{previous})" if previous else ""))
    if entry is not None and role is None and chosen == CHALLENGER:  # a newcomer: compared at once when labelled
        settled = settle_challenger(mv.spec)
        deployed = deployed.model_copy(update={"promoted": settled is not None and settled.outcome == "promoted"})
    publish("deployment", [deployment_artifact(mv.model, mv.version, chosen, deployed.changed, previous,
                                               deployed.targets, mv.spec.deploy.strategy, deployed.promoted)])
    return deployed


def settle_challenger(spec: LifecycleSpec) -> Settled | None:
    """Compare the serving challenger with the champion on recent labelled traffic: the winner is promoted (and the
    replaced champion retired where the spec says so), the loser stops serving, and without enough labels it keeps
    waiting. None when no challenger serves beside a champion. The deploy flow runs it for a newcomer; every
    monitor run runs it again."""
    platform = get_platform()
    champion = platform.store.serving_version(spec.name, CHAMPION)
    challenger = platform.store.serving_version(spec.name, CHALLENGER)
    if champion is None or challenger is None or champion == challenger:
        return None
    comparison = compare_challenger_task(platform, spec, champion, challenger)
    settled = _settle(spec, champion, challenger, comparison)
    publish("comparison", [comparison_artifact("comparison", spec, champion, challenger, settled.outcome, comparison,
                                               note="too few labelled predictions yet: the challenger waits",
                                               holdout=holdout_metrics_of(platform, spec.name,
                                                                          [champion, challenger]))])
    return settled


def _settle(spec: LifecycleSpec, champion: str, challenger: str, comparison: Comparison | None) -> Settled:
    from flows.retire import retire

    platform = get_platform()
    if comparison is None:
        return Settled(model=spec.name, challenger=challenger, outcome="waiting")
    print(f"{spec.name}: challenger v{challenger} {comparison.metric}={comparison.challenger:.4f} vs champion "
          f"v{champion} {comparison.champion:.4f} on {comparison.rows} recent labelled predictions")
    if not comparison.challenger_wins:
        end_challenger_task(platform, spec.name, challenger,
                            f"lost the comparison with champion v{champion} on {comparison.metric}")
        mirror_serving_task(platform, spec.name)
        return Settled(model=spec.name, challenger=challenger, outcome="champion-kept")
    deploy(model=spec.name, version=challenger, role=CHAMPION)
    retired = None
    if spec.retirement.retire_replaced_champion:
        retire(model=spec.name, version=champion, reason=f"replaced by v{challenger}, which won the comparison",
               dry_run=False)
        retired = champion
    return Settled(model=spec.name, challenger=challenger, outcome="promoted", retired=retired)
