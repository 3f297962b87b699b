"""retrain: train on recent data, register as @challenger, validate, compare with the champion on the same
recent labelled traffic, and promote through approve and deploy when the challenger wins."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import DataError
from flows.approve import approve
from flows.deploy import deploy
from flows.parameters import ModelName
from flows.register import register
from flows.retire import retire
from flows.validate import validate
from modelops.platform import Platform, get_platform
from modelops.spec import LifecycleSpec, load_spec
from modelops.store.records import as_utc
from tasks.approval import APPROVED
from tasks.audit import record_stage
from tasks.comparison import compare_on_recent_task
from tasks.prediction_log import labelled_predictions


class Retrained(BaseModel):
    model: str
    champion_before: str | None
    challenger: str
    outcome: str  # promoted | champion-kept | failed-validation | not-approved | already-champion
    metric: str | None = None
    champion_value: float | None = None
    challenger_value: float | None = None
    champion_after: str | None = None
    retired: str | None = None


def _as_of(platform: Platform, spec: LifecycleSpec, champion: str | None) -> datetime:
    """Just after the newest labelled prediction of the champion (the most recent data we can learn from)."""
    labelled = labelled_predictions(platform, spec.name, champion, None, None) if champion else None
    if labelled is None or labelled.empty:
        raise DataError(f"{spec.name}: no labelled predictions of the champion to retrain and compare on",
                        "score traffic with the champion and record ground truth (modelops labels) first")
    return labelled["event_time"].max().to_pydatetime().replace(tzinfo=timezone.utc) + timedelta(seconds=1)


@flow(name="retrain", log_prints=True)
def retrain(model: ModelName, as_of: datetime | None = None) -> Retrained:
    """Windows end at `as_of` (default: the newest labelled prediction): the last retrain.compare_days compare,
    the retrain.train_days before them train."""
    spec = load_spec(model)
    platform = get_platform()
    catalog = platform.catalog
    champion = platform.store.serving_version(spec.name, CHAMPION)
    end = as_utc(as_of) if as_of else _as_of(platform, spec, champion)
    compare_start = end - timedelta(days=spec.retrain.compare_days)
    train_end = compare_start.date()
    train_start = train_end - timedelta(days=spec.retrain.train_days)

    candidate = register(model=spec.name, train_start=train_start, train_end=train_end, parent_version=champion,
                         chain=False)
    version = candidate.version
    if version == champion:
        return Retrained(model=model, champion_before=champion, challenger=version, outcome="already-champion",
                         champion_after=champion)
    if catalog.version_for_alias(spec.name, CHALLENGER) != version:
        catalog.set_alias(spec.name, CHALLENGER, version)
        record_stage(stage="retrain", action="nominate-challenger", model=spec.name, version=version,
                     outcome="challenger", evidence={"train_window": [train_start, train_end], "champion": champion},
                     event=None)

    validated = validate(model=spec.name, version=version)
    if not validated.passed:
        record_stage(stage="retrain", action="gate-challenger", model=spec.name, version=version,
                     outcome="failed-validation", evidence={"failures": validated.failures}, event=events.RETRAINED)
        return Retrained(model=model, champion_before=champion, challenger=version, outcome="failed-validation",
                         champion_after=champion)

    comparison = compare_on_recent_task(platform, spec, champion, version, compare_start, end) if champion else None
    wins = comparison is None or comparison.challenger_wins
    record_stage(stage="retrain", action="compare-with-champion", model=spec.name, version=version,
                 outcome="challenger-wins" if wins else "champion-kept",
                 evidence={"champion": champion, "compare_window": [compare_start, end],
                           **(asdict(comparison) if comparison else {})},
                 event=events.RETRAINED)
    result = Retrained(model=model, champion_before=champion, challenger=version,
                       outcome="promoted" if wins else "champion-kept",
                       metric=comparison.metric if comparison else None,
                       champion_value=comparison.champion if comparison else None,
                       challenger_value=comparison.challenger if comparison else None, champion_after=champion)
    if comparison:
        print(f"{model}: challenger v{version} {comparison.metric}={comparison.challenger:.4f} vs champion "
              f"v{champion} {comparison.champion:.4f} on {comparison.rows} recent labelled predictions")
    if not wins:
        return result

    decision = approve(model=spec.name, version=version)
    if decision.status != APPROVED:
        result.outcome = "not-approved"
        return result
    deploy(model=spec.name, version=version, role=CHAMPION)
    record_stage(stage="retrain", action="promote", model=spec.name, version=version, outcome="promoted",
                 evidence={"replaced": champion}, event=events.PROMOTED)
    result.champion_after = version
    if champion and spec.retirement.retire_replaced_champion:
        retire(model=spec.name, version=champion, reason=f"replaced by v{version} after retraining", dry_run=False)
        result.retired = champion
    return result
