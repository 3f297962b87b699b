"""A model class written in Python that lives in reviewed code (the spec's `training.model_class`), never pickled.

The logged files hold data only: the class's arrays in one `.npz` archive (numeric or text arrays; object arrays,
which numpy would unpickle, are refused) and an MLmodel that names the class. The scan compares that name with
the spec's before anything is imported, so a file can only ever be read by the class the spec names; the class
is imported from the code base and rebuilt with `Class.from_arrays(arrays)`. The class implements:

    def to_arrays(self) -> dict[str, np.ndarray]           # what is logged
    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray])    # how it is rebuilt
    def predict(self, frame: pd.DataFrame) -> np.ndarray   # probabilities per class, or values
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tasks.model_kinds.base import (
    Described, Predictor, ScanContext, ScanResult, pyfunc_findings, read_model_file, scan_result,
)

FLAVOR = "modelops_custom"
DATA_FILE = "arrays.npz"


def read_arrays(data: bytes) -> dict[str, np.ndarray] | str:
    """The arrays of an .npz archive without unpickling anything, or why it is not one."""
    if data[:1] == b"\x80":
        return "the data file is a pickle, which runs arbitrary code on load; save the model's arrays with to_arrays()"
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return "the data file is not an .npz archive of arrays"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        return (f"the data file holds something other than plain arrays ({exc}); object arrays are pickles and "
                "never loaded: store numbers or text")


def scan(described: Described, context: ScanContext) -> ScanResult:
    flavor = described.flavors[FLAVOR]
    named = flavor.get("model_class")
    findings = pyfunc_findings(described.flavors, FLAVOR, None)
    if context.model_class is None:
        findings.append(f"the model names class {named!r}, but the spec names no training.model_class: a custom "
                        "model loads only with the class its spec names")
    elif named != context.model_class:
        findings.append(f"the model names class {named!r}, not the spec's training.model_class "
                        f"{context.model_class!r}; refused before importing anything")
    if flavor.get("format") != "npz":
        findings.append(f"custom model format {flavor.get('format')!r} is refused: only 'npz' arrays are loaded")
    read = read_model_file(described.folder, flavor.get("data", DATA_FILE))
    if not isinstance(read, str):
        arrays = read_arrays(read[1])
        findings += [arrays] if isinstance(arrays, str) else []
    return scan_result("custom", "npz", findings, described, read, model_class=named if not findings else None)


def load(data: bytes, scan: ScanResult) -> Predictor:
    from modelops.spec import resolve_entry_point

    arrays = read_arrays(data)
    if isinstance(arrays, str) or scan.model_class is None:
        raise ValueError(arrays if isinstance(arrays, str) else "the scan approved no model class")
    return resolve_entry_point(scan.model_class).from_arrays(arrays)


def wrap(trained: Any) -> Predictor:
    for method in ("to_arrays", "from_arrays", "predict"):
        if not callable(getattr(trained, method, None)):
            raise TypeError(f"{type(trained).__name__} has no {method}(): see tasks/model_kinds/custom_kind.py")
    return trained


def arrays_bytes(trained: Any) -> bytes:
    arrays = {name: np.asarray(value) for name, value in trained.to_arrays().items()}
    pickled = sorted(name for name, value in arrays.items() if value.dtype == object)
    if pickled:
        raise TypeError(f"to_arrays() returned object arrays {pickled}, which only pickle can store; return numbers "
                        "or text")
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def save(folder: Path, trained: Any, model_class: str, pip_requirements: list[str], signature: Any = None,
         mlflow_model: Any = None) -> Path:
    """Write the arrays and an MLmodel naming the class (no pyfunc flavor: MLflow has nothing to import)."""
    from mlflow.models import Model

    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATA_FILE).write_bytes(arrays_bytes(trained))
    (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in pip_requirements))
    mlflow_model.signature = signature
    mlflow_model.add_flavor(FLAVOR, model_class=model_class, data=DATA_FILE, format="npz")
    mlflow_model.save(str(folder / "MLmodel"))
    return folder


def log(trained: Any, signature: Any, pip_requirements: list[str], model_class: str) -> Any:
    """Log the model inside the active run through MLflow's generic flavor hook (Model.log calls save_model)."""
    from mlflow.models import Model

    def save_model(path: str, mlflow_model: Model, **_: Any) -> None:
        save(Path(path), trained, model_class, pip_requirements, signature, mlflow_model)

    return Model.log(artifact_path=None, name="model", flavor=SimpleNamespace(save_model=save_model))
