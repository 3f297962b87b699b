"""retrain: train on recent data, register as @challenger, validate, compare with the champion on the same
recent labelled traffic, and promote through approve and deploy when the challenger wins."""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from pydantic import BaseModel, Field

from flows.approve import approve
from flows.deploy import deploy
from flows.dispatch import hand_over
from flows.parameters import ModelName
from flows.register import register
from flows.retire import retire
from flows.validate import validate
from modelops.lineage_events import STAGE_HOOKS
from modelops.catalog import CHAMPION
from modelops.errors import ModelOpsError
from modelops.lifecycle import ApprovalStatus, RetrainOutcome, Stage
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, load_spec
from tasks.comparison import Comparison
from tasks.stage_artifacts import comparison_artifact, holdout_metrics_of, publish
from tasks.retraining import (
    RetrainPlan, compare_with_champion_task, nominate_challenger_task, plan_retrain, record_failed_gate_task,
    record_promotion_task,
)


class Retrained(BaseModel):
    model: str
    champion_before: str | None
    challenger: str
    outcome: str  # a modelops.lifecycle.RetrainOutcome
    procedure: str = ""  # the rule that chose the training window (a per-model retrain names its own)
    failures: list[str] = Field(default_factory=list)  # the challenger's validation failures
    metric: str | None = None
    champion_value: float | None = None
    challenger_value: float | None = None
    champion_after: str | None = None
    retired: str | None = None


@flow(name="retrain", log_prints=True, **STAGE_HOOKS)
def retrain(model: ModelName, as_of: datetime | None = None) -> Retrained:
    """Windows end at `as_of` (default: the newest labelled prediction): the last retrain.compare_days compare,
    the retrain.train_days before them train."""
    handed, result = hand_over(Stage.retrain, dict(model=model, as_of=as_of))
    if handed:
        return result
    spec = load_spec(model)
    if spec.endpoint is not None:
        raise ModelOpsError(f"{model} is an endpoint model ({spec.endpoint.infer_url()}): it is trained by its owner "
                            f"{spec.owner}, the platform has nothing to retrain",
                            f"ask {spec.owner} for a new version of the endpoint, then `modelops register {model}` "
                            "registers it (validation and the comparison with the champion apply as usual)")
    # One retrain of a model at a time (configs/platform.yaml, retrain_per_model), across every worker: the run waits
    # here for its model's slot (modelops.services.concurrency says why this bound lives inside the run).
    from prefect.concurrency.sync import concurrency

    from modelops.services.concurrency import ensure_retrain_limit, retrain_limit_name

    ensure_retrain_limit(model)
    with concurrency(retrain_limit_name(model), occupy=1):
        return challenge_champion(spec, plan_retrain(get_platform(), spec, as_of))


def challenge_champion(spec: LifecycleSpec, plan: RetrainPlan) -> Retrained:
    """Train on the plan's window, nominate the result as @challenger, validate it, compare it with the champion
    and promote it (approve, deploy, retire the old champion) when it wins. The stages run as sub-flows, so a
    per-model flow of any of them takes part. The comparison and the decision are shown in the UI as the artifact
    `retrain-<model>`."""
    platform = get_platform()
    result, comparison = _challenge(spec, plan)
    notes = {RetrainOutcome.already_champion: "the retrained version is the champion already",
             RetrainOutcome.failed_validation: "the challenger failed validation",
             RetrainOutcome.not_approved: "the challenger was not approved"}
    publish("retrain", [comparison_artifact(
        "retrain", spec, plan.champion, result.challenger, result.outcome, comparison,
        window=(plan.compare_start, plan.end), failures=result.failures, note=notes.get(result.outcome, ""),
        holdout=holdout_metrics_of(platform, spec.name, [plan.champion, result.challenger]))])
    return result


def _challenge(spec: LifecycleSpec, plan: RetrainPlan) -> tuple[Retrained, Comparison | None]:
    platform = get_platform()
    version = register(model=spec.name, train_start=plan.train_start, train_end=plan.train_end,
                       parent_version=plan.champion, chain=False).version
    result = Retrained(model=spec.name, champion_before=plan.champion, challenger=version,
                       outcome=RetrainOutcome.already_champion, procedure=plan.procedure, champion_after=plan.champion)
    if version == plan.champion:
        return result, None
    nominate_challenger_task(platform, plan, version)
    validated = validate(model=spec.name, version=version)
    if not validated.passed:
        record_failed_gate_task(plan, version, validated.failures)
        return result.model_copy(update={"outcome": RetrainOutcome.failed_validation,
                                         "failures": validated.failures}), None
    comparison = compare_with_champion_task(platform, spec, plan, version)
    if comparison:
        result = result.model_copy(update={"metric": comparison.metric, "champion_value": comparison.champion,
                                           "challenger_value": comparison.challenger})
        print(f"{spec.name}: challenger v{version} {comparison.metric}={comparison.challenger:.4f} vs champion "
              f"v{plan.champion} {comparison.champion:.4f} on {comparison.rows} recent labelled predictions")
    if comparison is not None and not comparison.challenger_wins:
        return result.model_copy(update={"outcome": RetrainOutcome.champion_kept}), comparison
    if approve(model=spec.name, version=version).status != ApprovalStatus.approved:
        return result.model_copy(update={"outcome": RetrainOutcome.not_approved}), comparison
    deploy(model=spec.name, version=version, role=CHAMPION)
    record_promotion_task(plan, version)
    result = result.model_copy(update={"outcome": RetrainOutcome.promoted, "champion_after": version})
    if plan.champion and spec.retirement.retire_replaced_champion:
        retire(model=spec.name, version=plan.champion, reason=f"replaced by v{version} after retraining",
               dry_run=False)
        result = result.model_copy(update={"retired": plan.champion})
    return result, comparison
