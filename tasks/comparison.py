"""Champion versus challenger on the same recent labelled production data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelops.errors import DataError
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.integrity import load_verified_model
from tasks.metrics import compute_metrics, improvement
from tasks.prediction_log import labelled_predictions
from tasks.schema import conform_to_signature
from tasks.scoring import predict_scores


@dataclass(frozen=True)
class Comparison:
    metric: str
    rows: int
    champion: float
    challenger: float
    improvement: float
    challenger_wins: bool


def compare_on_recent(platform: Platform, spec: LifecycleSpec, champion: str, challenger: str, start: datetime,
                      end: datetime) -> Comparison:
    """The champion is judged by what it predicted in production; the challenger scores the same logged inputs."""
    labelled = labelled_predictions(platform, spec.name, champion, start, end)
    minimum = spec.monitoring.performance.min_labelled_rows
    if len(labelled) < minimum:
        raise DataError(f"{spec.name}: only {len(labelled)} labelled predictions of v{champion} in {start}..{end}",
                        f"wait until at least {minimum} labels have arrived, or widen retrain.compare_days")
    metric = spec.monitoring.performance.metric
    y_true = labelled["label"].to_numpy()
    champion_value = compute_metrics(spec.task, y_true, labelled["score"].to_numpy(),
                                     spec.deploy.decision_threshold)[metric]
    model = load_verified_model(platform, spec, challenger, "retrain comparison")
    features = conform_to_signature(labelled, model.columns, f"logged inputs {start:%Y-%m-%d}..{end:%Y-%m-%d}")
    scores = predict_scores(model, features, spec.task)
    challenger_value = compute_metrics(spec.task, y_true, scores, spec.deploy.decision_threshold)[metric]
    gain = improvement(metric, champion_value, challenger_value)
    return Comparison(metric=metric, rows=len(labelled), champion=champion_value, challenger=challenger_value,
                      improvement=gain, challenger_wins=gain > spec.retrain.min_improvement)


compare_on_recent_task = as_task(compare_on_recent)
