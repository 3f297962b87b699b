"""bike-demand's own retraining: rentals follow the season, so a challenger learns from the newest weeks only
(flows.retrain.settings.train_weeks) instead of retrain.train_days. It is registered as @challenger, validated,
compared with the champion and promoted by the standard steps; its audit records name this procedure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.dispatch import flow_settings
from flows.parameters import ModelName
from flows.retrain import Retrained, challenge_champion
from modelops.lifecycle import Stage
from modelops.platform import get_platform
from modelops.spec import load_spec
from tasks.retraining import plan_retrain


class NewestWeeks(BaseModel):
    """The settings of this flow (spec: flows.retrain.settings)."""

    model_config = ConfigDict(extra="forbid")
    train_weeks: int = Field(ge=1, le=52, description="Train on this many weeks before the comparison window.")


@flow(name="bike-demand-retrain", log_prints=True)
def retrain(model: ModelName, as_of: datetime | None = None) -> Retrained:
    spec = load_spec(model)
    weeks = NewestWeeks.model_validate(flow_settings(spec, Stage.retrain)).train_weeks
    standard = plan_retrain(get_platform(), spec, as_of)
    plan = replace(standard, train_start=standard.train_end - timedelta(weeks=weeks),
                   procedure=f"bike-demand: the newest {weeks} weeks before the comparison window")
    return challenge_champion(spec, plan)
