"""What every model kind shares: the scan's result, the platform's predict interface and the checks of an MLmodel
that every flavor needs (the file it names stays inside the folder; MLflow's own loader would run only the flavor's
module and no shipped code)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from modelops.errors import ModelOpsError


class ModelUnavailable(ModelOpsError):
    """The model cannot score right now, whatever the rows (its service is down, slow or refuses our credentials):
    callers hold the rows and try again later instead of blaming them (a stream must not dead-letter its records
    because a vendor is down)."""


@dataclass(frozen=True)
class ScanResult:
    passed: bool
    serialization: str
    findings: list[str] = field(default_factory=list)
    trusted_types: list[str] = field(default_factory=list)  # what skops must be told to trust, all approved
    model_file: str | None = None
    predict_fn: str = "predict"
    sha256: str | None = None  # of the scanned bytes: loading refuses any other content
    # What the scan read from the MLmodel, so that nothing has to read it again: its sha256 (the caller compares
    # it with the pin) and its signature (the model's inputs).
    mlmodel_sha256: str | None = None
    signature: dict[str, Any] | None = None
    kind: str = "sklearn"  # the model kind whose loader reads the scanned bytes (tasks.model_kinds.KINDS)
    model_class: str | None = None  # custom kind: the reviewed 'module:Class' the spec names and the file agrees on
    environment: str | None = None  # set when the model loads in its own environment: its key and versions
    # The findings about names (allow-list entries and the classes the file references), which depend on where
    # they are judged: a model bound for its own environment is judged again there, but only when every other
    # finding is absent (tasks.integrity.open_pinned_model builds nothing for a version that fails here).
    name_findings: list[str] = field(default_factory=list)


class Predictor(Protocol):
    """What the platform scores through: probabilities (one column per class) for a classifier, values for a
    regressor, one row per input row."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ScanContext:
    """What the spec says about a model's files, beyond what the files say about themselves."""

    model_class: str | None = None  # the custom kind's reviewed class ('module:Class'), from training.model_class
    endpoint: Any = None  # the endpoint kind's modelops.spec.EndpointSpec: the only endpoint a description may name
    task: str | None = None  # the spec's task, which an endpoint description must agree with
    # Where a scikit-learn model's allow-listed names are judged (class or function): None for the platform's
    # process, else the environment it loads in (tasks.worker_client.EnvironmentNames).
    trust_report: Callable[[tuple[str, ...]], dict[str, dict[str, str]]] | None = None

    @classmethod
    def of(cls, spec: Any) -> "ScanContext":
        """What a LifecycleSpec says about its model's files."""
        return cls(spec.training.model_class, spec.endpoint, spec.task)


@dataclass(frozen=True)
class Described:
    """The MLmodel as the scan read it once: its document, flavors and the sha256 of its bytes."""

    folder: Path
    flavors: dict[str, Any]
    mlmodel_sha256: str
    signature: dict[str, Any] | None


def read_model_file(model_dir: Path, name: object) -> tuple[Path, bytes] | str:
    """The bytes of the model file the MLmodel names, which must lie inside the model folder."""
    path = (model_dir / str(name)).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        return f"the model file {name!r} lies outside the model folder"
    try:
        return path, path.read_bytes()
    except OSError as exc:
        return f"the model file {name!r} cannot be read: {exc}"


def pyfunc_findings(flavors: dict[str, Any], flavor: str, loader_module: str | None) -> list[str]:
    """MLflow's pyfunc loader must be the flavor's own module (or absent when `loader_module` is None), reading the
    scanned file, with no shipped code: anything else would run other code for whoever loads it with MLflow."""
    own, pyfunc = flavors.get(flavor, {}), flavors.get("python_function")
    findings = []
    if own.get("code") or (pyfunc or {}).get("code"):
        findings.append("the model ships code paths that loading would import; log it without code_paths")
    if loader_module is None:
        if pyfunc is not None:
            findings.append(f"the {flavor} flavor has no MLflow pyfunc loader, yet the MLmodel names "
                            f"{pyfunc.get('loader_module')!r}: loading it with MLflow would run that module")
        return findings
    if pyfunc is None:
        return findings
    if pyfunc.get("loader_module") != loader_module:
        findings.append(f"python_function loader_module is {pyfunc.get('loader_module')!r}, not {loader_module!r}: "
                        "loading it would run that module")
    if pyfunc.get("data") != own.get("data"):
        findings.append(f"python_function data {pyfunc.get('data')!r} is not the scanned file {own.get('data')!r}")
    return findings


def scan_result(kind: str, fmt: str, findings: list[str], described: Described, read: tuple[Path, bytes] | str,
                **extra: Any) -> ScanResult:
    """The verdict on one model file: passed only without findings, with the sha256 of the exact bytes judged."""
    if isinstance(read, str):
        return ScanResult(False, fmt, [*findings, read], kind=kind, mlmodel_sha256=described.mlmodel_sha256)
    path, data = read
    return ScanResult(not findings, fmt, findings, model_file=str(path), sha256=hashlib.sha256(data).hexdigest(),
                      mlmodel_sha256=described.mlmodel_sha256, signature=described.signature, kind=kind, **extra)


def probabilities(positive: np.ndarray) -> np.ndarray:
    """A binary classifier's positive-class probabilities as the (n, 2) matrix scikit-learn's predict_proba gives."""
    positive = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - positive, positive])


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories: tree libraries map them onto the categories they were trained with
    (stored in the model file), so unseen values become missing rather than an error."""
    text = [c for c in frame.columns if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].astype("category") for c in text})
