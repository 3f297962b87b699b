"""Security scan of a model file before anything deserialises it.

Pickle-based files run arbitrary code on load, so they are refused unless the spec allows them. skops files are
scanned for the types they would instantiate; every type must come from a module the spec trusts. The scan reads
the file itself and ignores the trusted-types list written inside the model (a crafted model could whitelist
anything there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modelops.spec import SecuritySpec
from modelops.tasks import as_task


@dataclass(frozen=True)
class ScanResult:
    passed: bool
    serialization: str
    findings: list[str] = field(default_factory=list)
    types_checked: int = 0


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
    if fmt != "skops":
        if policy.allow_pickle:
            return ScanResult(True, fmt, [f"{fmt} file accepted because the spec sets allow_pickle"])
        return ScanResult(False, fmt, [f"the model file is serialised with {fmt}, which runs arbitrary code on load; "
                                       "re-log it with serialization_format='skops' (or set "
                                       "validation.security.allow_pickle in the spec to accept the risk)"])
    import skops.io

    data_file = model_dir / sklearn.get("pickled_model", "model.skops")
    try:
        found = skops.io.get_untrusted_types(file=str(data_file))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a sound skops file
        return ScanResult(False, fmt, [f"{data_file.name} is not a readable skops file: {exc}"])
    untrusted = [t for t in found if not any(t.startswith(p) for p in policy.trusted_module_prefixes)]
    findings = [f"type {t} is outside the trusted modules {policy.trusted_module_prefixes}" for t in untrusted]
    return ScanResult(not untrusted, fmt, findings, types_checked=len(found))


scan_model_dir_task = as_task(scan_model_dir)
