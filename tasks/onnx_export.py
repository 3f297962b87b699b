"""A version's model as ONNX, checked at validation and trusted online only byte for byte.

At validation the model is converted (the converter is chosen by the model's flavor) and scored through
onnxruntime on the whole holdout; it counts as equal when no score differs from the native one by more than
TOLERANCE. The verdict is validation evidence in the governance store (the run-gates audit record, so the audit
chain guards it), and an equal model's bytes are an artifact of the validation run. ONNX is optional: a model
that does not convert or differs is no validation failure, it scores natively.

Online, the gateway scores through onnxruntime only when the store records an equal conversion of the very files
it loaded and validated, and only bytes whose sha256 is the recorded one: a changed file is refused, audited and
alerted like a tampered model file, and the verified native model serves instead.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion
from tasks import as_task
from tasks.context import ModelVersion
from tasks.integrity import VerifiedModel, scratch_dir

log = logging.getLogger("modelops.onnx")

TOLERANCE = 1e-6  # the largest |score difference| on the holdout that still counts as the same model
ONNX_ARTIFACT_DIR = "onnx"
ONNX_FILE = "model.onnx"
# Signature types fed as double (scikit-learn computes in float64 whatever the column's type) or as text.
DOUBLE_KINDS = {"double", "float", "long", "integer", "boolean"}
STRING_KINDS = {"string"}

Converter = Callable[[Any, Sequence[tuple[str, str]]], bytes]


def convert_sklearn(estimator: Any, columns: Sequence[tuple[str, str]]) -> bytes:
    """skl2onnx, one input per signature column (double or string, so nothing is rounded to float32), no ZipMap,
    and the double-precision tree converters of tasks.onnx_trees."""
    from skl2onnx import convert_sklearn as to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.base import is_classifier

    from tasks import onnx_trees

    onnx_trees.register()
    types = []
    for name, kind in columns:
        if kind not in DOUBLE_KINDS | STRING_KINDS:
            raise NotImplementedError(f"column {name!r} has signature type {kind!r}, which is not converted")
        types.append((name, StringTensorType([None, 1]) if kind in STRING_KINDS else DoubleTensorType([None, 1])))
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if is_classifier(final) else None
    model = to_onnx(estimator, initial_types=types, target_opset={"": 21, "ai.onnx.ml": onnx_trees.SKL2ONNX_ML_OPSET},
                    options=options)
    return onnx_trees.raise_ml_opset(model).SerializeToString()


# By flavor: the top-level package of the model's class. Another flavor (xgboost, lightgbm through onnxmltools)
# plugs in here.
CONVERTERS: dict[str, Converter] = {"sklearn": convert_sklearn}


def flavor_of(estimator: Any) -> str:
    return type(estimator).__module__.partition(".")[0]


class OnnxScorer:
    """An onnxruntime session over verified bytes, fed column by column as numpy arrays (no pandas)."""

    runtime = "onnxruntime"

    def __init__(self, data: bytes, columns: Sequence[tuple[str, str]], task: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread each: the gateway runs one worker process per core, and batches are small.
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()]
        if names != [name for name, _ in columns]:
            raise ValueError(f"the ONNX model takes {names}, the signature gives {[n for n, _ in columns]}")
        self.inputs = [(name, object if kind in STRING_KINDS else np.float64) for name, kind in columns]
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if task == "classification" and "probabilities" in outputs else outputs[-1]
        self.classification = task == "classification"

    def scores(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Positive-class probability or predicted value per row (as tasks.scoring.predict_scores gives them)."""
        feeds = {name: np.asarray(columns[name], dtype=dtype).reshape(-1, 1) for name, dtype in self.inputs}
        output = self.session.run([self.output], feeds)[0]
        if self.classification and output.ndim == 2:
            return output[:, -1].astype(np.float64, copy=False)
        return output.reshape(-1).astype(np.float64, copy=False)


@dataclass(frozen=True)
class OnnxConversion:
    """The validation evidence: whether the ONNX model may score for the native one, and why (not)."""

    converted: bool  # converted and equal within the tolerance on the whole holdout
    reason: str | None = None  # why not
    flavor: str | None = None
    max_abs_difference: float | None = None
    rows_compared: int = 0
    tolerance: float = TOLERANCE
    sha256: str | None = None  # of the stored ONNX file (only when converted)
    artifact: str | None = None  # its path among the validation run's artifacts

    def evidence(self) -> dict[str, Any]:
        return asdict(self)


def max_difference(native: np.ndarray, converted: np.ndarray) -> float:
    """max |difference|; infinite when the shapes differ or one side is NaN where the other is not."""
    if native.shape != converted.shape:
        return float("inf")
    missing = np.isnan(native) | np.isnan(converted)
    if np.any(np.isnan(native) != np.isnan(converted)):
        return float("inf")
    return float(np.max(np.abs(native[~missing] - converted[~missing]), initial=0.0))


def convert_to_onnx(mv: ModelVersion, model: VerifiedModel, features: pd.DataFrame,
                    native_scores: np.ndarray) -> tuple[OnnxConversion, bytes | None]:
    """Convert the validated model and compare it with the native scores on the holdout: (evidence, ONNX bytes
    when equal). Never raises for a model that does not convert: that is evidence too."""
    estimator = getattr(model.model, "estimator", None)
    if estimator is None:  # an ONNX or custom-class model (tasks.model_kinds) has nothing to convert
        return OnnxConversion(False, f"no ONNX conversion for a {type(model.model).__name__}: it scores with its own "
                                     "runtime", flavor=type(model.model).__module__.partition(".")[0]), None
    flavor = flavor_of(estimator)
    converter = CONVERTERS.get(flavor)
    if converter is None:
        return OnnxConversion(False, f"no ONNX converter for the {flavor!r} flavor", flavor=flavor), None
    try:
        data = converter(estimator, model.columns)
        converted = OnnxScorer(data, model.columns, mv.spec.task).scores(features)
    except Exception as exc:  # noqa: BLE001 - converters and onnxruntime raise anything; the model scores natively
        reason = f"conversion failed: {type(exc).__name__}: {exc}"
        return OnnxConversion(False, reason[:500], flavor=flavor, rows_compared=len(features)), None
    difference = max_difference(np.asarray(native_scores, dtype=np.float64), converted)
    if difference > TOLERANCE:
        return OnnxConversion(False, f"scores differ by up to {difference:.3g} on the holdout (tolerance "
                                     f"{TOLERANCE:g})", flavor=flavor, max_abs_difference=difference,
                              rows_compared=len(features)), None
    return OnnxConversion(True, flavor=flavor, max_abs_difference=difference, rows_compared=len(features),
                          sha256=hashlib.sha256(data).hexdigest(),
                          artifact=f"{ONNX_ARTIFACT_DIR}/{ONNX_FILE}"), data


convert_to_onnx_task = as_task(convert_to_onnx)


def recorded_conversion(platform: Platform, governed: GovernedVersion) -> dict[str, Any] | None:
    """The equal conversion the store records for exactly this version's validated files, or None."""
    record = platform.store.newest_record(governed.model, governed.version, "validate", "run-gates")
    if record is None:
        return None
    onnx = record.evidence.get("onnx") or {}
    if not onnx.get("converted") or not onnx.get("sha256"):
        return None
    if (record.evidence.get("validation_run_id") != governed.validation_run_id
            or record.evidence.get("content_hash") != governed.content_hash):
        return None  # the verdict is about another validation or other files
    return onnx


def refuse_onnx(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, recorded: str, found: str,
                occasion: str) -> None:
    """An ONNX file that is not the one validation recorded: audited and alerted as tasks.integrity does for
    model files; the caller serves the verified native model instead."""
    from tasks.alerting import alert_finding
    from tasks.audit import record_stage

    record_stage(stage="integrity", action="verify-onnx-file", model=spec.name, version=governed.version,
                 outcome="tampered", evidence={"occasion": occasion, "recorded": recorded, "found": found,
                                               "run_id": governed.validation_run_id}, event=None)
    alert_finding(platform, spec, governed.version, "integrity-onnx-file",
                  f"{spec.name} v{governed.version}: ONNX file changed after validation",
                  f"Refused at {occasion}: the validation run's {ONNX_ARTIFACT_DIR}/{ONNX_FILE} is {found[:16]}.., "
                  f"validation recorded {recorded[:16]}..; scoring with the verified native model. Validate the "
                  "version again (force) to convert it afresh.")
    log.warning("%s v%s: ONNX file refused (%s); scoring natively", spec.name, governed.version, found)


def load_verified_onnx(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion,
                       columns: Sequence[tuple[str, str]], occasion: str) -> OnnxScorer | None:
    """The ONNX scorer validation recorded as equal for this version, built from bytes whose sha256 is the
    recorded one; None (native scoring) when there is none, and after refusing a changed or missing file."""
    recorded = recorded_conversion(platform, governed)
    if recorded is None or governed.validation_run_id is None:
        return None
    with tempfile.TemporaryDirectory(dir=scratch_dir(platform)) as folder:
        try:
            path = platform.catalog.download_run_artifacts(governed.validation_run_id, recorded["artifact"],
                                                           Path(folder))
            data = path.read_bytes()
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            refuse_onnx(platform, spec, governed, recorded["sha256"], f"missing ({type(exc).__name__})", occasion)
            return None
    found = hashlib.sha256(data).hexdigest()
    if found != recorded["sha256"]:
        refuse_onnx(platform, spec, governed, recorded["sha256"], found, occasion)
        return None
    return OnnxScorer(data, columns, spec.task)  # the bytes just hashed, never the file again
