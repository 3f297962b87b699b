"""The validation gates of a version: security scan, schema, metric thresholds, data quality, fairness."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelops.errors import SchemaMismatchError
from modelops.platform import Platform
from modelops.recovery import owner_tags
from modelops.spec import LifecycleSpec, Window
from modelops.store.records import GovernedVersion
from tasks import as_task
from tasks.bias import bias_evidence, measure_bias
from tasks.data import load_window
from tasks.drift import typed_features
from tasks.metrics import compute_metrics, threshold_failures
from tasks.quality import build_expectations, run_expectations
from tasks.schema import conform_to_signature
from tasks.context import ModelVersion
from tasks.integrity import VerifiedModel, open_pinned_model, scratch_dir
from tasks.onnx_export import ONNX_ARTIFACT_DIR, ONNX_FILE, convert_to_onnx_task
from tasks.prediction_log import write_parquet_atomically
from tasks.scoring import predict_scores

REFERENCE_SAMPLE_ROWS = 20_000


@dataclass
class ValidationReport:
    passed: bool
    failures: list[str] = field(default_factory=list)
    security: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    holdout_rows: int = 0
    holdout_window: list[str] = field(default_factory=list)
    onnx: dict[str, Any] = field(default_factory=dict)  # tasks.onnx_export.OnnxConversion's evidence

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_window_of(spec: LifecycleSpec, governed: GovernedVersion) -> Window:
    """The window a version was trained on (its lineage in the store), or the spec's for models registered from
    elsewhere."""
    if governed.train_start is not None and governed.train_end is not None:
        return Window(start=governed.train_start.date(), end=governed.train_end.date())
    return spec.training.window


def holdout_window_of(spec: LifecycleSpec, governed: GovernedVersion) -> Window:
    """Out-of-time holdout: the spec's number of days right after the training window."""
    trained = training_window_of(spec, governed)
    return Window(start=trained.end, end=trained.end + timedelta(days=spec.validation.holdout_days))


@dataclass(frozen=True)
class Gate:
    """One gate's outcome: what it found (for the report) and its failures (empty when it passed)."""

    evidence: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Holdout:
    """The holdout rows of a version, conformed to its signature (None when the schema gate failed)."""

    frame: pd.DataFrame
    features: pd.DataFrame | None
    window: Window


def security_gate(platform: Platform, mv: ModelVersion) -> tuple[Gate, VerifiedModel | None]:
    """Check the files against their registration pin and scan them; load only what passed."""
    scan, pyfunc = open_pinned_model(platform, mv.spec, mv.governed, "validation")
    return Gate(asdict(scan), [] if pyfunc is not None else [f"security: {f}" for f in scan.findings]), pyfunc


def training_reference(mv: ModelVersion) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The data-quality suite learned from the training window, and the reference sample monitoring reuses."""
    spec = mv.spec
    reference = load_window(spec, training_window_of(spec, mv.governed))
    suite = build_expectations(typed_features(reference, spec.data.features), spec.data.features,
                               spec.validation.data_quality)
    return suite, reference.sample(min(len(reference), REFERENCE_SAMPLE_ROWS), random_state=0).sort_index()


def schema_gate(mv: ModelVersion, pyfunc: VerifiedModel) -> tuple[Gate, Holdout]:
    """The out-of-time holdout, conformed to the model's input signature."""
    window = holdout_window_of(mv.spec, mv.governed)
    frame = load_window(mv.spec, window)
    try:
        features = conform_to_signature(frame, pyfunc.columns, f"holdout {window.start}..{window.end}")
    except SchemaMismatchError as exc:
        return Gate(failures=[f"schema: {exc.what}"]), Holdout(frame, None, window)
    return Gate(), Holdout(frame, features, window)


def holdout_scores(mv: ModelVersion, pyfunc: VerifiedModel, holdout: Holdout) -> np.ndarray:
    assert holdout.features is not None, "the schema gate failed: nothing to score"
    return predict_scores(pyfunc, holdout.features, mv.spec.task)


def metrics_gate(mv: ModelVersion, holdout: Holdout, scores: np.ndarray) -> Gate:
    """The spec's metric floors and ceilings on the holdout."""
    spec = mv.spec
    metrics = compute_metrics(spec.task, holdout.frame[spec.data.target].to_numpy(), scores,
                              spec.deploy.decision_threshold)
    return Gate(metrics, [f"metric: {reason}" for reason in threshold_failures(metrics,
                                                                            spec.validation.metric_thresholds)])


def data_quality_gate(mv: ModelVersion, suite: list[dict[str, Any]], holdout: Holdout) -> Gate:
    quality = run_expectations(suite, typed_features(holdout.frame, mv.spec.data.features))
    if quality.success_share >= mv.spec.validation.data_quality.min_success_share:
        return Gate(asdict(quality))
    return Gate(asdict(quality), [f"data quality: {quality.evaluated - round(quality.success_share * quality.evaluated)}"
                                  f" of {quality.evaluated} expectations failed on the holdout"])


def fairness_gate(mv: ModelVersion, holdout: Holdout, scores: np.ndarray) -> Gate:
    """The spec's bias limits on each protected attribute, for classifiers and regressors alike. A gap that cannot
    be computed fails: a spec that lists protected attributes cannot pass without being measured."""
    spec = mv.spec
    measures = measure_bias(spec, holdout.frame, holdout.frame[spec.data.target].to_numpy(), scores)
    where = f"the holdout {holdout.window.start}..{holdout.window.end}"
    return Gate(bias_evidence(measures), [r for m in measures if (r := m.reason(where)) is not None])


# One task run per gate in the flow run, named for the gate an operator looks for (tasks.stage_artifacts' rows
# use the same names).
GATE_TASK_NAMES = {"security-scan": "gate-security-scan", "schema": "gate-schema",
                   "holdout-metrics": "gate-holdout-metrics", "data-quality": "gate-data-quality",
                   "fairness": "gate-fairness"}
security_gate_task = as_task(security_gate, name=GATE_TASK_NAMES["security-scan"])
training_reference_task = as_task(training_reference)
schema_gate_task = as_task(schema_gate, name=GATE_TASK_NAMES["schema"])
holdout_scores_task = as_task(holdout_scores)
metrics_gate_task = as_task(metrics_gate, name=GATE_TASK_NAMES["holdout-metrics"])
data_quality_gate_task = as_task(data_quality_gate, name=GATE_TASK_NAMES["data-quality"])
fairness_gate_task = as_task(fairness_gate, name=GATE_TASK_NAMES["fairness"])


def validate_version(platform: Platform, mv: ModelVersion) -> tuple[ValidationReport, list[dict[str, Any]],
                                                                     pd.DataFrame, bytes | None]:
    """Every gate, each its own task: returns the report, the data-quality suite, a reference sample of the
    training data and the model as ONNX when it converts with equal holdout scores (optional: not a gate). What is
    judged is exactly what was scanned, and the scan judged the pinned files."""
    security, pyfunc = security_gate_task(platform, mv)
    suite, sample = training_reference_task(mv)
    report = ValidationReport(passed=False, security=security.evidence, failures=list(security.failures))
    if pyfunc is None:
        return report, suite, sample, None
    try:
        return _judge_loaded(mv, pyfunc, report, suite, sample)
    finally:
        pyfunc.close()  # a model in its own environment: its worker stops with the validation


def _judge_loaded(mv: ModelVersion, pyfunc: VerifiedModel, report: ValidationReport, suite: list[dict[str, Any]],
                  sample: pd.DataFrame) -> tuple[ValidationReport, list[dict[str, Any]], pd.DataFrame, bytes | None]:
    schema, holdout = schema_gate_task(mv, pyfunc)
    report.holdout_rows, report.holdout_window = len(holdout.frame), [str(holdout.window.start),
                                                                       str(holdout.window.end)]
    report.failures += schema.failures
    if holdout.features is None:
        return report, suite, sample, None
    scores = holdout_scores_task(mv, pyfunc, holdout)
    metrics, quality = metrics_gate_task(mv, holdout, scores), data_quality_gate_task(mv, suite, holdout)
    fairness = fairness_gate_task(mv, holdout, scores)
    report.metrics, report.data_quality, report.fairness = metrics.evidence, quality.evidence, fairness.evidence
    report.failures += metrics.failures + quality.failures + fairness.failures
    report.passed = not report.failures
    conversion, onnx_model = convert_to_onnx_task(mv, pyfunc, holdout.features, scores)
    report.onnx = conversion.evidence()
    return report, suite, sample, onnx_model


def log_validation_run(platform: Platform, mv: ModelVersion, report: ValidationReport,
                       suite: list[dict[str, Any]], sample: pd.DataFrame, onnx_model: bytes | None = None) -> str:
    """One MLflow run per validation (through the catalog): report, suite, the reference sample and the equal
    ONNX model (whose sha256 the report records)."""
    path = platform.settings.home / "tmp" / f"reference-{mv.model}-v{mv.version}.parquet"
    write_parquet_atomically(sample, path)
    with tempfile.TemporaryDirectory(dir=scratch_dir(platform)) as folder:
        files = []
        if onnx_model is not None:
            (Path(folder) / ONNX_FILE).write_bytes(onnx_model)
            files.append((Path(folder) / ONNX_FILE, ONNX_ARTIFACT_DIR))
        try:
            return platform.catalog.log_validation_run(mv.model, mv.version, metrics=report.metrics,
                                                       report=report.as_dict(), expectations=suite,
                                                       reference_file=path, tags=owner_tags(), files=files)
        finally:
            path.unlink(missing_ok=True)


log_validation_run_task = as_task(log_validation_run)
