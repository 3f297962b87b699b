"""Training a model through its spec's entry point and logging it to the catalog."""

from __future__ import annotations

import hashlib
import inspect
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.catalog import RUN_TAG_MODEL, RUN_TAG_STAGE, MlflowCatalog
from modelops.errors import SpecError
from modelops.recovery import kill_orphaned_mlflow_runs, owner_tags
from modelops.spec import LifecycleSpec, Window, resolve_entry_point
from tasks import as_task
from tasks.data import data_hash, features_of, load_window
from tasks.model_kinds import KINDS, SKLEARN


@dataclass(frozen=True)
class TrainingInputs:
    """Everything that determines a trained version; equal inputs give the same fingerprint."""

    window: Window
    data_hash: str
    code_version: str
    params: dict[str, Any]
    rows: int

    @property
    def fingerprint(self) -> str:
        payload = json.dumps([str(self.window.start), str(self.window.end), self.data_hash, self.code_version,
                              self.params], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str


def code_version(spec: LifecycleSpec) -> str:
    """Hash of the training entry point's module source, plus the git commit when there is one. An endpoint model
    has no trainer: its version is the endpoint's description (a changed URL, model or output is a new version)."""
    if spec.endpoint is not None:
        from tasks.model_kinds.endpoint_kind import description_bytes

        return "endpoint:" + hashlib.sha256(description_bytes(spec.endpoint, spec.task)).hexdigest()[:12]
    trainer = spec.entry("trainer")
    source = inspect.getsource(inspect.getmodule(trainer))  # type: ignore[arg-type]
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    if spec.training.kind == SKLEARN and spec.deploy.environment != "platform" and _pins_other_versions(spec):
        # Trained in its own environment: the libraries are part of the code that made the model.
        libraries = "\n".join(sorted(spec.training.pip_requirements))
        digest += f"+env-{hashlib.sha256(libraries.encode()).hexdigest()[:8]}"
    commit = _git_commit(Path(inspect.getfile(trainer)).parent)
    return f"{digest}@{commit[:12]}" if commit else digest


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _pins_other_versions(spec: LifecycleSpec) -> bool:
    from tasks.environments import loader_pins, platform_differences

    return spec.deploy.environment == "isolated" or bool(platform_differences(
        loader_pins(spec.training.pip_requirements)))


def training_environment(spec: LifecycleSpec) -> Any:
    """The environment the spec's training runs in (tasks.environments.Environment, built or from the cache), or
    None for the platform's own process: see deploy.environment."""
    from modelops.platform import get_platform
    from tasks.worker_client import environment_for

    return environment_for(get_platform().settings.home, spec.deploy.environment, spec.training.pip_requirements,
                           spec.training.kind, "skops", f"{spec.name} training")


def prepare_training(spec: LifecycleSpec, window: Window) -> tuple[pd.DataFrame, TrainingInputs]:
    frame = load_window(spec, window)
    inputs = TrainingInputs(window=window, data_hash=data_hash(frame[[*spec.data.features.all, spec.data.target]]),
                            code_version=code_version(spec), params=dict(spec.training.params), rows=len(frame))
    return frame, inputs


def train_and_log(spec: LifecycleSpec, frame: pd.DataFrame, inputs: TrainingInputs,
                  catalog: MlflowCatalog) -> LoggedModel:
    """Fit through the entry point and log what it returns through the spec's model kind (training.kind), with
    signature and requirements; scikit-learn estimators also with an input example."""
    features = features_of(spec, frame)
    environment = training_environment(spec)
    trained = None if environment is not None else trained_model(spec, features, frame[spec.data.target])
    # A register killed while logging left its run RUNNING: close it before this run starts (the CLI does the same
    # for every experiment; this covers the register flow started by a runner).
    kill_orphaned_mlflow_runs(catalog.client, [catalog.experiment_id(spec.name)])
    params = {**spec.training.params, "train_start": inputs.window.start, "train_end": inputs.window.end,
              "training_rows": inputs.rows, "model_kind": spec.training.kind}
    run_tags = {RUN_TAG_MODEL: spec.name, RUN_TAG_STAGE: "register", "data_hash": inputs.data_hash,
                "code_version": inputs.code_version, **owner_tags()}
    metrics = {"training_rows": float(inputs.rows)}
    if environment is not None:  # scikit-learn pinned at other versions: trained (and later scored) in its own
        from modelops.platform import get_platform
        from tasks.isolated_training import train_and_log_isolated

        run_id, model_uri = train_and_log_isolated(
            spec, environment, features, frame[spec.data.target], catalog, params, metrics, run_tags,
            get_platform().settings.home / "logs" / f"env-worker-{environment.key[:12]}.log")
        return LoggedModel(run_id=run_id, model_uri=model_uri)
    if spec.training.kind != SKLEARN:
        run_id, model_uri = log_kind(spec, trained, features.head(5), catalog, params, metrics, run_tags)
        return LoggedModel(run_id=run_id, model_uri=model_uri)
    predict_fn = "predict_proba" if spec.task == "classification" else "predict"
    if not hasattr(trained, predict_fn):
        raise SpecError(f"{spec.training.entry_point} returned {type(trained).__name__}, which has no {predict_fn}()",
                        "return a fitted scikit-learn estimator, set training.kind to what it returns, or log the "
                        "model yourself and register its URI")
    run_id, model_uri = catalog.log_sklearn_model(
        spec.name, trained, input_example=features.head(5), predict_fn=predict_fn, params=params, metrics=metrics,
        run_tags=run_tags, pip_requirements=spec.training.pip_requirements)
    return LoggedModel(run_id=run_id, model_uri=model_uri)


def trained_model(spec: LifecycleSpec, features: pd.DataFrame, target: pd.Series) -> Any:
    """What the spec's trainer returns; for an endpoint model, the endpoint itself (trained by its owner)."""
    if spec.endpoint is not None:
        from tasks.model_kinds.endpoint_kind import EndpointModel

        return EndpointModel(spec.endpoint, spec.task)
    return spec.entry("trainer")(features, target, dict(spec.training.params))


def log_kind(spec: LifecycleSpec, trained: Any, example: pd.DataFrame, catalog: MlflowCatalog,
             params: dict[str, Any], metrics: dict[str, float], run_tags: dict[str, str]) -> tuple[str, str]:
    """Log a non-scikit-learn model through its kind: the signature comes from scoring the example through the very
    predictor the platform will load, so what is declared is what serves."""
    from mlflow.models import infer_signature

    kind = KINDS[spec.training.kind]
    if spec.training.model_class is not None and type(trained) is not resolve_entry_point(spec.training.model_class):
        raise SpecError(f"{spec.training.entry_point} returned {type(trained).__name__}, not an instance of "
                        f"training.model_class {spec.training.model_class}", "return an instance of that class, or "
                        "name the class it returns in the spec")
    try:
        predictor = kind.wrap(trained)
        output = predictor.predict(example)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec.training.entry_point} returned {type(trained).__name__}, which is not a "
                        f"{kind.name} model: {exc}", f"return a {kind.name} model, or set training.kind to what "
                        "it returns") from exc
    signature = infer_signature(example, output)
    return catalog.log_model_run(spec.name, params, metrics, run_tags, lambda: kind.log(
        trained, signature, spec.training.pip_requirements, model_class=spec.training.model_class))


prepare_training_task = as_task(prepare_training)
train_and_log_task = as_task(train_and_log)
