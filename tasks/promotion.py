"""Who may replace a serving champion. A newly registered version enters beside a serving champion as @challenger
and becomes champion only by winning the comparison on recent labelled traffic, by a rollback to a version that
served as champion before, or, where the spec allows it (deploy.promotion), by a person's recorded decision."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import DataError, ModelOpsError
from modelops.lifecycle import AuditOutcome, ComparisonOutcome, Stage
from modelops.platform import SERVICE_ACTOR, Platform, current_actor
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.audit import record_stage
from tasks.comparison import Comparison, compare_on_recent
from tasks.windows import labelled_as_of, window_ending

COMPARE_ACTION = "compare-with-champion"


class PromotionRefusedError(ModelOpsError):
    """A version asked to replace the serving champion without having earned it."""


def entry_role(platform: Platform, model: str, version: str) -> str:
    """The role a version takes when nobody names one (the onboarding chain): champion when no champion serves
    (the first version of a model) or it already is the champion; otherwise challenger."""
    champion = platform.store.serving_version(model, CHAMPION)
    return CHAMPION if champion in (None, version) else CHALLENGER


def won_against(platform: Platform, model: str, version: str, champion: str) -> bool:
    """Whether a recorded comparison (a retrain's, or a challenger's) found this version better than `champion`."""
    return any(entry.version == version and entry.action == COMPARE_ACTION
               and entry.outcome == ComparisonOutcome.challenger_wins and entry.evidence.get("champion_version") == champion
               for entry in platform.store.audit_trail(model))


def promotion_problem(platform: Platform, spec: LifecycleSpec, version: str, reason: str | None) -> str | None:
    """Why `version` may not become champion now, or None when it may."""
    champion = platform.store.serving_version(spec.name, CHAMPION)
    if champion in (None, version) or won_against(platform, spec.name, version, champion):
        return None
    if platform.store.first_served_at(spec.name, version) is not None:
        return None  # a rollback to a version that served as champion before
    if spec.deploy.promotion == "comparison_or_decision" and reason and reason.strip():
        # A decision is a person's: the service identity (triggers, schedules, the UI's Run button) has none.
        if current_actor() == SERVICE_ACTOR:
            return (f"v{version} has not won a comparison with the serving champion v{champion}, and a promotion "
                    "by decision must be a person's, not the service's (run `modelops deploy` with MODELOPS_USER)")
        return None
    return (f"v{version} has not won a comparison with the serving champion v{champion}"
            + ("" if spec.deploy.promotion == "comparison_or_decision"
               else " (the spec's deploy.promotion is 'comparison': only a comparison promotes)"))


def require_promotable(platform: Platform, spec: LifecycleSpec, version: str, role: str, reason: str | None) -> None:
    if role != CHAMPION:
        return
    problem = promotion_problem(platform, spec, version, reason)
    if problem is None:
        return
    fix = ("deploy it as challenger: it is promoted when it wins the comparison on recent labelled traffic "
           "(each monitor run compares a serving challenger)")
    if spec.deploy.promotion == "comparison_or_decision":
        fix += ", or record a person's decision with a reason (deploy --role champion --reason '...')"
    raise PromotionRefusedError(f"{spec.name}: {problem}", fix)


def compare_challenger(platform: Platform, spec: LifecycleSpec, champion: str, challenger: str,
                       as_of: datetime | None = None) -> Comparison | None:
    """The serving challenger against the champion on the champion's recent labelled traffic (the last
    retrain.compare_days), recorded; None, and nothing recorded, while too few labels have arrived."""
    end = as_of or labelled_as_of(platform, spec.name, champion)
    if end is None:
        return None
    window = window_ending(end, spec.retrain.compare_days)
    try:
        comparison = compare_on_recent(platform, spec, champion, challenger, window.start, end)
    except DataError as waiting:
        print(f"{spec.name}: challenger v{challenger} waits for its comparison: {waiting.what}")
        return None
    record_stage(stage=Stage.deploy, action=COMPARE_ACTION, model=spec.name, version=challenger,
                 outcome=ComparisonOutcome.challenger_wins if comparison.challenger_wins
                 else ComparisonOutcome.champion_kept,
                 evidence={**asdict(comparison), "champion_version": champion, "compare_window": [window.start, end]},
                 event=None)
    return comparison


def end_challenger(platform: Platform, model: str, version: str, reason: str) -> None:
    """A challenger that lost stops serving (its approval stands; a later comparison never sees it again)."""
    record_stage(stage=Stage.deploy, action="end-challenger", model=model, version=version,
                 outcome=AuditOutcome.ended, evidence={"reason": reason}, event=None,
                 change=platform.store.end_role(model, CHALLENGER, reason))


require_promotable_task = as_task(require_promotable)
compare_challenger_task = as_task(compare_challenger)
end_challenger_task = as_task(end_challenger)
