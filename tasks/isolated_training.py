"""Training a scikit-learn model in its own environment (tasks.environments) and logging what it made.

The spec's training function runs in the environment built from `training.pip_requirements`, so the skops file is
really written by the pinned scikit-learn; the platform never unpickles or re-saves the estimator. It logs those
bytes as an ordinary MLflow sklearn model (skops format, the signature from the worker's output on example rows,
the spec's requirements), which the scan, validation and scoring then treat like any other version.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modelops.settings import project_dir
from modelops.spec import LifecycleSpec
from tasks.environments import Environment
from tasks.worker_client import train_in_environment

MODEL_FILE = "model.skops"
EXAMPLE_ROWS = 5


def save_skops_model(folder: Path, data: bytes, *, predict_fn: str, sklearn_version: str, trusted: list[str],
                     requirements: list[str], signature: Any, mlflow_model: Any) -> None:
    """The files mlflow.sklearn.save_model writes for a skops model, from bytes made elsewhere."""
    from mlflow.pyfunc import add_to_model

    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(data)
    (folder / "requirements.txt").write_text("".join(f"{line}\n" for line in requirements))
    python = ".".join(map(str, sys.version_info[:3]))
    (folder / "python_env.yaml").write_text(yaml.safe_dump({"python": python, "build_dependencies": ["pip"],
                                                            "dependencies": ["-r requirements.txt"]}))
    (folder / "conda.yaml").write_text(yaml.safe_dump({"name": "mlflow-env", "channels": ["conda-forge"],
                                                       "dependencies": [f"python={python}", "pip",
                                                                        {"pip": list(requirements)}]}))
    mlflow_model.signature = signature
    add_to_model(mlflow_model, loader_module="mlflow.sklearn", model_path=MODEL_FILE, predict_fn=predict_fn,
                 conda_env="conda.yaml", python_env="python_env.yaml")
    mlflow_model.add_flavor("sklearn", pickled_model=MODEL_FILE, sklearn_version=sklearn_version,
                            serialization_format="skops", code=None, skops_trusted_types=trusted)
    mlflow_model.save(str(folder / "MLmodel"))


def train_and_log_isolated(spec: LifecycleSpec, environment: Environment, features: pd.DataFrame,
                           target: pd.Series, catalog: Any, params: dict[str, Any], metrics: dict[str, float],
                           run_tags: dict[str, str], log_path: Path) -> tuple[str, str]:
    """Fit in the environment and log the result; returns (run_id, model_uri)."""
    from mlflow.models import Model, infer_signature

    predict_fn = "predict_proba" if spec.task == "classification" else "predict"
    data, trusted, output, versions = train_in_environment(
        environment, log_path, spec.name, entry_point=spec.training.entry_point, code_path=project_dir(),
        features=features, target=target, params=dict(spec.training.params), predict_fn=predict_fn,
        example_rows=EXAMPLE_ROWS)
    signature = infer_signature(features.head(EXAMPLE_ROWS), np.asarray(output))
    run_tags = {**run_tags, "environment": environment.key[:12],
                "environment_versions": ", ".join(f"{k}=={v}" for k, v in sorted(versions.items()))}

    def save_model(path: str, mlflow_model: Model, **_: Any) -> None:
        save_skops_model(Path(path), data, predict_fn=predict_fn, sklearn_version=versions["scikit-learn"],
                         trusted=trusted, requirements=list(spec.training.pip_requirements), signature=signature,
                         mlflow_model=mlflow_model)

    return catalog.log_model_run(spec.name, params, metrics, run_tags, lambda: Model.log(
        artifact_path=None, name="model", flavor=SimpleNamespace(save_model=save_model)))


def retrained_scores(spec: LifecycleSpec, environment: Environment, features: pd.DataFrame, target: pd.Series,
                     params: dict[str, Any], home: Path) -> np.ndarray:
    """Train again in the environment and score `features` with the result there (modelops reproduce)."""
    import hashlib

    from tasks.scoring import predict_scores
    from tasks.worker_client import IsolatedModel

    predict_fn = "predict_proba" if spec.task == "classification" else "predict"
    log_path = home / "logs" / f"env-worker-{environment.key[:12]}.log"
    data, trusted, _, _ = train_in_environment(
        environment, log_path, spec.name, entry_point=spec.training.entry_point, code_path=project_dir(),
        features=features, target=target, params=params, predict_fn=predict_fn, example_rows=EXAMPLE_ROWS)
    model = IsolatedModel(environment, data, hashlib.sha256(data).hexdigest(), trusted, predict_fn, log_path,
                          f"{spec.name} (retrained)")
    try:
        return predict_scores(model, features, spec.task)
    finally:
        model.close()
