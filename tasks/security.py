"""Security scan of a model file, and the only way the platform deserialises one.

Pickle-based files run arbitrary code on load, so they are refused unless the spec accepts the risk. A skops file
may only reference classes on an exact allow-list: the platform's own (PLATFORM_TRUSTED_TYPES), the classes skops
trusts by default, and the spec's `validation.security.trusted_types`. Functions are never allowed: skops' reduce,
function and method nodes call or hand out whatever a file names, so a single trusted function (numpy.testing's
`runstring`, `builtins.eval`, ...) runs code on load. The scan reads the file's schema itself, names every type
or function it references, and refuses the file before anything in it is imported.

The scan ignores what the model says about itself (MLmodel's trusted-types list, a custom pyfunc loader or code
paths could make MLflow's loader run anything), and `load_scanned_model` loads exactly the bytes that were
scanned, trusting exactly the extra types the scan approved, through skops itself.

Models of other kinds (XGBoost, LightGBM, ONNX, custom classes) are scanned and loaded by their own modules in
tasks.model_kinds, dispatched on the MLmodel's flavor: the same guarantees (nothing the files name is imported
before the scan passes; the loader reads only the scanned bytes), each kind's own format rules.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modelops.errors import UnsafeModelError
from modelops.spec import SecuritySpec
from tasks import as_task
from tasks.env_worker import classify_names, skops_default_names, tree_findings
from tasks.model_kinds import KINDS, Predictor, ScanContext, ScanResult, kind_of
from tasks.model_kinds.base import Described, read_model_file

PREDICT_FNS = {"predict", "predict_proba"}

# Classes the shipped models and plain scikit-learn linear models, trees, ensembles, pipelines, column
# transformers and encoders need beyond what skops trusts by default (checked with skops 0.16 and scikit-learn
# 1.9). Each is a class whose loading only fills in data; no entry is a function.
PLATFORM_TRUSTED_TYPES: tuple[str, ...] = (
    # Containers and arrays every estimator's state is made of (skops trusts them only inside its own nodes).
    "builtins.dict",
    "builtins.slice",  # ColumnTransformer keeps column slices
    "numpy.ndarray",
    "numpy.dtype",  # dtype attributes, e.g. of encoders
    # Random state kept by fitted estimators: HistGradientBoosting's Generator (both shipped models), and a
    # RandomState passed as random_state.
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    # Fitted trees. skops leaves both untrusted because a crafted node array can crash prediction (no bounds
    # checks in scikit-learn); they hold only numbers and cannot run code. TreePredictor: HistGradientBoosting
    # (both shipped models); Tree: decision trees, random forests, extra trees, gradient boosting.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    # Cython loss objects of HistGradientBoosting (binomial: flight-delay, Poisson: bike-demand), gradient
    # boosting and SGD models.
    "sklearn._loss._loss.CyAbsoluteError",
    "sklearn._loss._loss.CyExponentialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfGammaLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfPoissonLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss._loss.CyHalfTweedieLoss",
    "sklearn._loss._loss.CyHalfTweedieLossIdentity",
    "sklearn._loss._loss.CyHuberLoss",
    "sklearn._loss._loss.CyPinballLoss",
    "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
    "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.ModifiedHuber",
    "sklearn.linear_model._sgd_fast.SquaredEpsilonInsensitive",
    "sklearn.linear_model._sgd_fast.SquaredHinge",
)

# Classes that call whatever callable they are given, so trusting one reaches every function: never allowed,
# not even from skops' defaults (skops trusts builtins.map) or a spec.
CALLABLE_WRAPPERS = frozenset({
    "builtins.type", "builtins.map", "builtins.filter", "functools.partial", "functools.partialmethod",
    "operator.attrgetter", "operator.itemgetter", "operator.methodcaller",
})



@dataclass(frozen=True)
class SkopsDefaults:
    """What skops trusts without being told, split into classes and everything else (functions)."""

    classes: frozenset[str]
    functions: frozenset[str]


def defaults_from(kinds: dict[str, str]) -> SkopsDefaults:
    """skops' default names, classified where the model loads (tasks.env_worker.classify_names)."""
    return SkopsDefaults(frozenset(n for n, kind in kinds.items() if kind == "class" and n not in CALLABLE_WRAPPERS),
                         frozenset(n for n, kind in kinds.items()
                                   if kind != "class" and not kind.startswith("unresolved")))


@lru_cache(maxsize=64)
def _platform_kinds(names: tuple[str, ...]) -> dict[str, str]:
    return classify_names(list(names))


def checked_report(reported: dict[str, str], asked: list[str]) -> dict[str, str]:
    """An environment's kinds (tasks.env_worker.classify_names there), checked against the platform's own: a name
    the platform resolves counts as a class only if both say so (else it is what the platform found, or not found
    where the model loads); the environment's word alone decides only for names the platform cannot resolve at all
    (a class the platform's libraries lack). The platform imports only names under modules that skops' defaults or
    the allow-list (`asked`) already name, never a module the environment alone names; those never count as
    classes."""
    modules = {name.partition(".")[0] for name in [*skops_default_names(), *asked]}
    judged = tuple(sorted(n for n in reported if isinstance(n, str) and n.partition(".")[0] in modules))
    here = _platform_kinds(judged)
    checked = {}
    for name, kind in reported.items():
        mine = here.get(name, "unresolved: under a module the platform does not judge")
        theirs = kind if isinstance(kind, str) else "unresolved: not reported"
        if name not in here:
            checked[name] = mine
        elif mine == "class" or mine.startswith("unresolved"):
            checked[name] = theirs
        else:
            checked[name] = mine
    for name in asked:
        checked.setdefault(name, "unresolved: the environment did not report it")
    return checked


@lru_cache(maxsize=1)
def skops_defaults() -> SkopsDefaults:
    """skops' defaults in the platform's own process."""
    return defaults_from(classify_names(skops_default_names()))


def _allow_list_finding(name: str, kind: str) -> str | None:
    """Why an allow-list entry cannot be trusted, or None when it is a class."""
    if name in CALLABLE_WRAPPERS:
        return f"allow-list entry {name} calls any function it is given; remove it from trusted_types"
    if kind.startswith("unresolved"):
        return f"allow-list entry {name} does not resolve ({kind.partition(': ')[2]}); fix or remove it"
    if kind != "class":
        return (f"allow-list entry {name} is a {kind}, not a class: functions are never trusted; "
                "remove it from validation.security.trusted_types")
    return None


def allow_list(policy: SecuritySpec, kinds: dict[str, str] | None = None) -> tuple[frozenset[str], list[str]]:
    """The exact classes a model may contain beyond skops' default classes, and findings on bad entries. `kinds`:
    the entries classified where the model loads (default: here); there, a platform entry that does not exist
    (another scikit-learn) is simply not trusted, while a spec's entry must resolve."""
    names = list(dict.fromkeys([*PLATFORM_TRUSTED_TYPES, *policy.trusted_types]))
    elsewhere = kinds is not None
    kinds = kinds if kinds is not None else classify_names(names)
    findings: list[str] = []
    allowed: set[str] = set()
    for name in names:
        kind = kinds.get(name, "unresolved: not classified")
        if elsewhere and name in PLATFORM_TRUSTED_TYPES and name not in policy.trusted_types \
                and kind.startswith("unresolved"):
            continue
        finding = _allow_list_finding(name, kind)
        if finding is None:
            allowed.add(name)
        else:
            findings.append(finding)
    return frozenset(allowed), findings


def referenced_names(data: bytes) -> set[str]:
    """Every module.name a skops file's schema refers to. Each node names the type or function skops imports for
    it in `__module__`/`__class__`; collecting them from every object of the JSON, whatever its loader or depth,
    sees more than skops' own audit (which skips names some nodes ignore), never less. Imports nothing."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pending: list[Any] = [json.loads(archive.read("schema.json"))]
    names: set[str] = set()
    while pending:  # a stack, not recursion: a crafted file may nest deeper than Python's recursion limit
        item = pending.pop()
        if isinstance(item, dict):
            module, name = item.get("__module__"), item.get("__class__")
            if isinstance(module, str) and isinstance(name, str):  # else skops cannot import anything for it
                names.add(f"{module}.{name}")
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return names


def _refusal(name: str, defaults: SkopsDefaults) -> str:
    if name in defaults.functions:
        return (f"{name} is a function (skops trusts it by default), not a class: the platform never loads "
                "functions from a model file; rebuild the model without it (e.g. no FunctionTransformer(func))")
    return (f"type {name} is not on the allow-list of classes a model may contain; refused before loading. If it "
            f"is a class you have reviewed, add '{name}' to validation.security.trusted_types in the spec; "
            "functions are never allowed")


def _skops_findings(data: bytes, allowed: frozenset[str],
                    defaults: SkopsDefaults) -> tuple[list[str], list[str], list[str]]:
    """Findings on a skops file's content, the types skops must be told to trust to load it, and which of the
    findings are about names (judged where the model loads: another environment may judge them otherwise)."""
    import skops.io

    try:
        names = referenced_names(data)
        # skops' audit also reports what nodes keep outside __module__/__class__ (a method's name, a random
        # generator's bit generator, old-protocol functions): all must be on the allow-list too.
        flagged = set(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a sound skops file
        return [f"the model file is not a readable skops file ({type(exc).__name__}: {exc})"], [], []
    findings = [_refusal(name, defaults) for name in sorted(names | flagged)
                if name not in allowed and (name in flagged or name not in defaults.classes)]
    return findings, sorted(flagged), findings


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


def _read_mlmodel(model_dir: Path) -> tuple[dict[str, Any], str] | str:
    """The MLmodel description (read once) and the sha256 of its bytes, or why there is none to trust."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return f"{model_dir} holds no MLmodel file: not an MLflow model"
    data = mlmodel.read_bytes()
    try:
        document = yaml.safe_load(data.decode()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"the MLmodel file is not a valid MLflow model description: {exc}"
    flavors = document.get("flavors", {}) if isinstance(document, dict) else None
    if not isinstance(flavors, dict) or not all(isinstance(f, dict) for f in flavors.values()):
        return "the MLmodel file's flavors are not a mapping of flavor settings"
    return document, hashlib.sha256(data).hexdigest()


def scan_model_dir(model_dir: Path, policy: SecuritySpec, context: ScanContext = ScanContext()) -> ScanResult:
    """Judge a model folder without importing anything it names: scikit-learn (skops) here, every other kind
    through its own scan (tasks.model_kinds), dispatched on the MLmodel's flavor."""
    described = _read_mlmodel(model_dir)
    if isinstance(described, str):
        return ScanResult(False, "unknown", [described])
    document, mlmodel_sha256 = described
    flavors, signature = document["flavors"], document.get("signature")
    sklearn, kind = flavors.get("sklearn"), kind_of(flavors)
    if sklearn is None and kind is not None:
        return kind.scan(Described(model_dir, flavors, mlmodel_sha256,
                                   signature if isinstance(signature, dict) else None), context)
    if sklearn is None:
        pyfunc = flavors.get("python_function", {})
        return ScanResult(False, str(pyfunc.get("loader_module", "unknown")),
                          [f"flavor {sorted(flavors)} is loaded with cloudpickle, which can run arbitrary code; "
                           "log the model as one of the platform's kinds (scikit-learn with skops, XGBoost JSON/UBJ, "
                           "LightGBM text, ONNX, or a reviewed custom class): see README 'Model kinds'"])
    fmt = str(sklearn.get("serialization_format", "pickle"))
    findings = _flavor_findings(flavors)
    predict_fn = str(flavors.get("python_function", {}).get("predict_fn", "predict"))
    if kind is not None:
        findings.append(f"the MLmodel describes two kinds of model (sklearn and {kind.flavor}): which file loads "
                        "is ambiguous; log one flavor")
    read = read_model_file(model_dir, sklearn.get("pickled_model", "model.skops"))
    if isinstance(read, str):
        return ScanResult(False, fmt, [*findings, read], predict_fn=predict_fn)
    path, data = read
    trusted: list[str] = []
    name_findings: list[str] = []
    if fmt != "skops":
        if not policy.allow_pickle:
            findings.append(f"the model file is serialised with {fmt}, which runs arbitrary code on load; re-log it "
                            "with serialization_format='skops' (or set validation.security.allow_pickle in the "
                            "spec to accept the risk)")
    else:
        if context.trust_report is None:
            defaults, (allowed, findings_on_list) = skops_defaults(), allow_list(policy)
        else:  # the model loads in its own environment: its names are judged there, and checked here
            asked = list(dict.fromkeys([*PLATFORM_TRUSTED_TYPES, *policy.trusted_types]))
            report = context.trust_report(tuple(asked))
            defaults = defaults_from(checked_report(report["defaults"], []))
            allowed, findings_on_list = allow_list(policy, checked_report(report["names"], asked))
        findings_on_file, trusted, on_names = _skops_findings(data, allowed, defaults)
        findings += findings_on_list + findings_on_file
        name_findings = findings_on_list + on_names
    return ScanResult(not findings, fmt, findings, trusted_types=trusted, model_file=str(path),
                      name_findings=name_findings,
                      predict_fn=predict_fn, sha256=hashlib.sha256(data).hexdigest(),
                      mlmodel_sha256=mlmodel_sha256, signature=signature if isinstance(signature, dict) else None)


class ScannedModel:  # the scikit-learn kind's predictor; other kinds' live in tasks.model_kinds
    """A scanned scikit-learn estimator behind the pyfunc-style `predict(frame)` the platform calls."""

    def __init__(self, estimator: Any, predict_fn: str) -> None:
        self.estimator = estimator
        self.predict_fn = predict_fn

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(getattr(self.estimator, self.predict_fn)(frame))


def scanned_bytes(scan: ScanResult) -> bytes:
    """The model file's bytes, provided they are the very bytes the scan passed."""
    if not scan.passed or scan.model_file is None or scan.sha256 is None:
        raise UnsafeModelError(f"refusing to load a model that failed the security scan: {scan.findings}",
                               "fix the findings and validate the version again")
    data = Path(scan.model_file).read_bytes()
    if hashlib.sha256(data).hexdigest() != scan.sha256:
        raise UnsafeModelError(f"{scan.model_file} changed after the security scan",
                               "scan the model again and load what was scanned")
    return data


def load_scanned_model(scan: ScanResult) -> Predictor:
    """Deserialise the file the scan passed, trusting the types it approved, and nothing else; a kind other than
    scikit-learn is read by its own loader (tasks.model_kinds), from the same checked bytes."""
    data = scanned_bytes(scan)
    if scan.kind in KINDS:
        try:
            return KINDS[scan.kind].load(data, scan)
        except Exception as exc:  # noqa: BLE001 - a library refusing scanned bytes: the file is not a sound model
            raise UnsafeModelError(f"the {scan.kind} model file passed the scan but its library refused it "
                                   f"({type(exc).__name__}: {exc})", "retrain and log the model again") from exc
    if scan.serialization == "skops":
        import skops.io

        estimator = skops.io.loads(data, trusted=scan.trusted_types)
        findings = tree_findings(estimator)
        if findings:
            raise UnsafeModelError(f"the model file's trees are malformed: {'; '.join(findings)}",
                                   "retrain and log the model again; a file edited by hand is not a model")
        return ScannedModel(estimator, scan.predict_fn)
    if scan.serialization == "cloudpickle":  # only reached when the spec explicitly accepts pickle's risk
        import cloudpickle

        return ScannedModel(cloudpickle.loads(data), scan.predict_fn)
    import pickle

    return ScannedModel(pickle.loads(data), scan.predict_fn)  # noqa: S301 - accepted by the spec (allow_pickle)


scan_model_dir_task = as_task(scan_model_dir)
