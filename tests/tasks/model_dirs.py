"""MLflow model folders for the security tests: real ones saved by MLflow, and ways to tamper with them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import mlflow.sklearn
import numpy as np
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression


def fitted() -> LogisticRegression:
    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))


def save(model: Any, path: Path, fmt: str = "skops") -> Path:
    """Save as the platform logs a model: the skops types MLflow is told to trust are the estimator's own, and
    explicit requirements spare MLflow inferring them in a subprocess (seconds a model)."""
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model)) if fmt == "skops" else None
    mlflow.sklearn.save_model(model, str(path), serialization_format=fmt, skops_trusted_types=trusted,
                              pip_requirements=["scikit-learn", "skops"])
    return path


def tamper(path: Path, **pyfunc: object) -> None:
    """Rewrite settings of the MLmodel's python_function flavor."""
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"].update(pyfunc)
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def edit_schema(model_dir: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Rewrite the schema.json of a saved skops model file in place, keeping its other members."""
    file = model_dir / "model.skops"
    with zipfile.ZipFile(file) as source:
        members = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(members["schema.json"])
    edit(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(file, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return model_dir
