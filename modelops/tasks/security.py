"""Security scan of a model file, and the only way the platform deserialises one.

Pickle-based files run arbitrary code on load, so they are refused unless the spec accepts the risk. A skops file
is scanned for the types it would instantiate; each must come from a module the spec trusts. The scan ignores
what the model says about itself (MLmodel's trusted-types list, a custom pyfunc loader or code paths could make
MLflow's loader run anything), and `load_scanned_model` loads exactly the file that was scanned, with exactly the
types the scan found, through skops itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modelops.errors import UnsafeModelError
from modelops.spec import SecuritySpec
from modelops.tasks import as_task

PREDICT_FNS = {"predict", "predict_proba"}


@dataclass(frozen=True)
class ScanResult:
    passed: bool
    serialization: str
    findings: list[str] = field(default_factory=list)
    trusted_types: list[str] = field(default_factory=list)
    model_file: str | None = None
    predict_fn: str = "predict"


def _flavor_findings(flavors: dict[str, Any]) -> list[str]:
    """The MLmodel must describe a plain scikit-learn model that MLflow's own sklearn loader would read."""
    pyfunc, sklearn = flavors.get("python_function", {}), flavors.get("sklearn", {})
    findings = []
    if pyfunc.get("loader_module") != "mlflow.sklearn":
        findings.append(f"python_function loader_module is {pyfunc.get('loader_module')!r}, not 'mlflow.sklearn': "
                        "loading it would run that module")
    if pyfunc.get("code") or sklearn.get("code"):
        findings.append("the model ships code paths that loading would import; log it without code_paths")
    if pyfunc.get("model_path") != sklearn.get("pickled_model"):
        findings.append(f"python_function model_path {pyfunc.get('model_path')!r} is not the scanned file "
                        f"{sklearn.get('pickled_model')!r}")
    if pyfunc.get("predict_fn", "predict") not in PREDICT_FNS:
        findings.append(f"predict_fn {pyfunc.get('predict_fn')!r} is not one of {sorted(PREDICT_FNS)}")
    return findings


def scan_model_dir(model_dir: Path, policy: SecuritySpec) -> ScanResult:
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return ScanResult(False, "unknown", [f"{model_dir} holds no MLmodel file: not an MLflow model"])
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    sklearn = flavors.get("sklearn")
    if sklearn is None:
        pyfunc = flavors.get("python_function", {})
        return ScanResult(False, str(pyfunc.get("loader_module", "unknown")),
                          [f"flavor {sorted(flavors)} is loaded with cloudpickle, which can run arbitrary code; "
                           "log the model with mlflow.sklearn and serialization_format='skops'"])
    fmt = sklearn.get("serialization_format", "pickle")
    findings = _flavor_findings(flavors)
    predict_fn = flavors.get("python_function", {}).get("predict_fn", "predict")
    model_file = str(model_dir / sklearn.get("pickled_model", "model.skops"))
    if fmt != "skops":
        if not policy.allow_pickle:
            findings.append(f"the model file is serialised with {fmt}, which runs arbitrary code on load; re-log it "
                            "with serialization_format='skops' (or set validation.security.allow_pickle in the "
                            "spec to accept the risk)")
        return ScanResult(not findings, fmt, findings, model_file=model_file, predict_fn=predict_fn)
    import skops.io

    try:
        found = skops.io.get_untrusted_types(file=model_file)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a sound skops file
        return ScanResult(False, fmt, [*findings, f"{Path(model_file).name} is not a readable skops file: {exc}"])
    untrusted = [t for t in found if not any(t.startswith(p) for p in policy.trusted_module_prefixes)]
    findings += [f"type {t} is outside the trusted modules {policy.trusted_module_prefixes}" for t in untrusted]
    return ScanResult(not findings, fmt, findings, trusted_types=list(found), model_file=model_file,
                      predict_fn=predict_fn)


class ScannedModel:
    """A scanned scikit-learn estimator behind the pyfunc-style `predict(frame)` the platform calls."""

    def __init__(self, estimator: Any, predict_fn: str) -> None:
        self.estimator = estimator
        self.predict_fn = predict_fn

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(getattr(self.estimator, self.predict_fn)(frame))


def load_scanned_model(scan: ScanResult) -> ScannedModel:
    """Deserialise the file the scan passed, with the types it found, and nothing else."""
    if not scan.passed or scan.model_file is None:
        raise UnsafeModelError(f"refusing to load a model that failed the security scan: {scan.findings}",
                               "fix the findings and validate the version again")
    if scan.serialization == "skops":
        import skops.io

        return ScannedModel(skops.io.load(scan.model_file, trusted=scan.trusted_types), scan.predict_fn)
    import pickle  # only reached when the spec explicitly accepts pickle's risk (allow_pickle)

    with open(scan.model_file, "rb") as handle:
        if scan.serialization == "cloudpickle":
            import cloudpickle

            return ScannedModel(cloudpickle.load(handle), scan.predict_fn)
        return ScannedModel(pickle.load(handle), scan.predict_fn)  # noqa: S301 - accepted by the spec


scan_model_dir_task = as_task(scan_model_dir)
