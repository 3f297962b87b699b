"""The steps of a retrain: its windows, the challenger's nomination, the comparison with the champion and the
promotion, each recorded. Per-model retrain flows reuse them with their own window rule or training procedure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import DataError
from modelops.lifecycle import AuditOutcome, ComparisonOutcome, RetrainOutcome, Stage
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import as_utc
from tasks import as_task
from tasks.audit import record_stage
from tasks.comparison import Comparison, compare_on_recent
from tasks.windows import labelled_as_of, retrain_windows

STANDARD_PROCEDURE = "standard: retrain.train_days before the comparison window"


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain trains on and compares on: [train_start, train_end) trains, [compare_start, end) compares.
    `procedure` names the rule that chose them (shown in the audit trail and the result)."""

    model: str
    champion: str | None
    train_start: date
    train_end: date
    compare_start: datetime
    end: datetime
    procedure: str = STANDARD_PROCEDURE


def plan_retrain(platform: Platform, spec: LifecycleSpec, as_of: datetime | None = None) -> RetrainPlan:
    """The standard windows, ending at `as_of` (default: the newest labelled prediction): the last
    retrain.compare_days compare, the retrain.train_days before them train."""
    champion = platform.store.serving_version(spec.name, CHAMPION)
    end = as_utc(as_of) if as_of else labelled_as_of(platform, spec.name, champion)
    if end is None:
        raise DataError(f"{spec.name}: no labelled predictions of the champion to retrain and compare on",
                        "score traffic with the champion and record ground truth (modelops labels) first")
    windows = retrain_windows(end, spec.retrain.train_days, spec.retrain.compare_days)
    return RetrainPlan(model=spec.name, champion=champion, train_start=windows.train.start,
                       train_end=windows.train.end, compare_start=windows.compare.start, end=end)


def nominate_challenger(platform: Platform, plan: RetrainPlan, version: str) -> None:
    """The new version becomes @challenger in MLflow (nominated, not serving), recorded with its procedure."""
    if platform.catalog.version_for_alias(plan.model, CHALLENGER) == version:
        return
    platform.catalog.set_alias(plan.model, CHALLENGER, version)
    record_stage(stage=Stage.retrain, action="nominate-challenger", model=plan.model, version=version,
                 outcome=AuditOutcome.challenger, evidence={"train_window": [plan.train_start, plan.train_end],
                                                            "champion": plan.champion, "procedure": plan.procedure},
                 event=None)


def record_failed_gate(plan: RetrainPlan, version: str, failures: list[str]) -> None:
    record_stage(stage=Stage.retrain, action="gate-challenger", model=plan.model, version=version,
                 outcome=RetrainOutcome.failed_validation, evidence={"failures": failures,
                                                                     "procedure": plan.procedure},
                 event=events.RETRAINED)


def compare_with_champion(platform: Platform, spec: LifecycleSpec, plan: RetrainPlan,
                          version: str) -> Comparison | None:
    """Champion and challenger on the same recent labelled traffic, recorded (None: no champion, it wins)."""
    comparison = compare_on_recent(platform, spec, plan.champion, version, plan.compare_start, plan.end) \
        if plan.champion else None
    wins = comparison is None or comparison.challenger_wins
    record_stage(stage=Stage.retrain, action="compare-with-champion", model=spec.name, version=version,
                 outcome=ComparisonOutcome.challenger_wins if wins else ComparisonOutcome.champion_kept,
                 evidence={"champion": plan.champion, "compare_window": [plan.compare_start, plan.end],
                           "procedure": plan.procedure, **(asdict(comparison) if comparison else {}),
                           "champion_version": plan.champion},
                 event=events.RETRAINED)
    return comparison


def record_promotion(plan: RetrainPlan, version: str) -> None:
    record_stage(stage=Stage.retrain, action="promote", model=plan.model, version=version,
                 outcome=RetrainOutcome.promoted, evidence={"replaced": plan.champion, "procedure": plan.procedure},
                 event=events.PROMOTED)


nominate_challenger_task = as_task(nominate_challenger)
record_failed_gate_task = as_task(record_failed_gate)
compare_with_champion_task = as_task(compare_with_champion)
record_promotion_task = as_task(record_promotion)
