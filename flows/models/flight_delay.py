"""flight-delay's own approval: the standard policy plus a business check. Every origin airport must be served
well, not only the average flight: the holdout ROC AUC of each segment must stay at or above a floor, else the
version is rejected with the segment named in the reason and in its own audit record (`segment-check`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import flow
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

from flows.approve import ApprovalOutcome, standard_approve
from flows.dispatch import flow_settings
from flows.parameters import ModelName, Version
from modelops.lifecycle import ApprovalStatus, GateStatus, Stage
from modelops.platform import Platform, get_platform
from tasks import as_task
from tasks.approval import Decision
from tasks.context import ModelVersion, resolve_model_version
from tasks.data import load_window
from tasks.decisions import record_check_task
from tasks.integrity import load_verified_model
from tasks.schema import conform_to_signature
from tasks.scoring import predict_scores
from tasks.validation import holdout_window_of


class SegmentFloor(BaseModel):
    """The settings of this flow (spec: flows.approve.settings)."""

    model_config = ConfigDict(extra="forbid")
    segment_column: str = Field("origin", description="The column whose values are the segments.")
    min_segment_roc_auc: float = Field(ge=0, le=1, description="Each segment's holdout ROC AUC must reach this.")
    min_segment_rows: int = Field(200, ge=1, description="Smaller segments are too noisy to judge; not judged.")


def segment_roc_auc(platform: Platform, mv: ModelVersion, column: str, min_rows: int) -> dict[str, float]:
    """Holdout ROC AUC of every segment with enough rows and both classes."""
    holdout = holdout_window_of(mv.spec, mv.governed)
    frame = load_window(mv.spec, holdout)
    model = load_verified_model(platform, mv.spec, mv.version, "approval segment check")
    scores = pd.Series(predict_scores(model, conform_to_signature(frame, model.columns, "holdout"), mv.spec.task),
                       index=frame.index)
    values = {}
    for segment, rows in frame.groupby(column, observed=True):
        if len(rows) >= min_rows and rows[mv.spec.data.target].nunique() == 2:
            values[str(segment)] = float(roc_auc_score(rows[mv.spec.data.target], scores.loc[rows.index]))
    return values


segment_roc_auc_task = as_task(segment_roc_auc)


def segment_check(mv: ModelVersion, floor: SegmentFloor) -> Decision | None:
    """A rejection naming every segment below the floor (None when all reach it), recorded as `segment-check`."""
    values = segment_roc_auc_task(get_platform(), mv, floor.segment_column, floor.min_segment_rows)
    below = {segment: value for segment, value in values.items() if value < floor.min_segment_roc_auc}
    reasons = [f"segment check: holdout roc_auc of {floor.segment_column} {segment} is {value:.4f}, below the "
               f"floor {floor.min_segment_roc_auc}" for segment, value in sorted(below.items())]
    evidence: dict[str, Any] = {"column": floor.segment_column, "floor": floor.min_segment_roc_auc,
                                "roc_auc": values, "below": sorted(below), "reasons": reasons}
    record_check_task(mv, Stage.approve, "segment-check", not below, evidence)
    return Decision(ApprovalStatus.rejected, reasons) if below else None


@flow(name="flight-delay-approve", log_prints=True)
def approve(model: ModelName, version: Version) -> ApprovalOutcome:
    mv = resolve_model_version(model, version)
    floor = SegmentFloor.model_validate(flow_settings(mv.spec, Stage.approve))
    # Only a validated version is worth the check: the standard policy rejects the others on its own.
    validated = mv.governed.validation_status == GateStatus.passed and not mv.governed.retired
    return standard_approve(mv, segment_check(mv, floor) if validated else None)
