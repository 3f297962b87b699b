"""A corpus of crafted MLflow model folders, generated from a real saved model. Each carries a payload that
writes a marker file if any of it runs; where it is cheap to show, the test first proves the payload is live
(whatever trusts it runs it). The scan must then refuse it, naming the bad type or reason, and nothing may run.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from modelops.errors import UnsafeModelError
from modelops.spec import SecuritySpec
from tasks.security import load_scanned_model, scan_model_dir
from tests.tasks.model_dirs import edit_schema, save, tamper

ROOT = Path(__file__).resolve().parents[2]
# What the scan trusted before: any type or function under these modules.
OLD_PREFIXES = ("sklearn.", "numpy.", "scipy.")
RUNSTRING = "numpy.testing._private.utils.runstring"  # exec(code, globals): the reported attack
# Runs a Python script in a subprocess and returns quietly when it prints nothing.
SKLEARN_RUNNER = "sklearn.utils._testing.assert_run_python_script_without_output"
# unpickle_function(module, name, None) imports any module and returns any attribute of it.
SCIPY_IMPORTER = "scipy._lib._uarray._backend.unpickle_function"


def training_frame() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5], "b": [1.0, 0, 1, 0, 1, 0], "c": list("xyxyzz")})
    return frame, np.array([0, 0, 1, 1, 0, 1])


def pipeline() -> Pipeline:
    """Shaped like the shipped models: one-hot categories, the rest passed through, then a classifier."""
    prepare = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["c"])],
                                remainder="passthrough")
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(*training_frame())


def python(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def shell(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


# --- skops schema nodes -----------------------------------------------------------------------------------------
def node(dotted: str, loader: str, **state: Any) -> dict[str, Any]:
    module, _, name = dotted.rpartition(".")
    return {"__class__": name, "__module__": module, "__loader__": loader, **state}


def json_node(value: Any) -> dict[str, Any]:
    return node("builtins.str", "JsonNode", content=json.dumps(value), is_json=True)


def tuple_node(*items: dict[str, Any]) -> dict[str, Any]:
    return node("builtins.tuple", "TupleNode", content=list(items))


def dict_node(content: dict[str, dict[str, Any]], key_types: list[dict[str, Any]]) -> dict[str, Any]:
    return node("builtins.dict", "DictNode", content=content, key_types=node("builtins.list", "ListNode",
                                                                               content=key_types))


def call_node(function: str, *args: Any) -> dict[str, Any]:
    """A reduce node: skops rebuilds it by calling `function(*args)` (its state is empty, so nothing else)."""
    return node(function, "LossNode", __reduce__={"args": tuple_node(*map(json_node, args))},
                content=dict_node({}, []))


def globals_call_node(function: str, code: str) -> dict[str, Any]:
    """A reduce node calling `function(code, {})`: the signature of exec-like helpers such as runstring."""
    return node(function, "LossNode", __reduce__={"args": tuple_node(json_node(code), dict_node({}, []))},
                content=dict_node({}, []))


def calling_dict(callable_node: dict[str, Any], argument: str) -> dict[str, Any]:
    """A dict whose key type is the callable: skops rebuilds its key by calling it on `argument`."""
    return dict_node({argument: json_node(0)}, [callable_node])


def fitted_attributes(schema: dict[str, Any], class_name: str) -> dict[str, Any]:
    """The attribute nodes of the fitted estimator of that class (the first that has n_features_in_)."""
    pending: list[Any] = [schema]
    while pending:
        item = pending.pop(0)
        if isinstance(item, dict):
            attributes = item.get("content", {}).get("content") if item.get("__loader__") == "ObjectNode" else None
            if item.get("__class__") == class_name and isinstance(attributes, dict) and "n_features_in_" in attributes:
                return attributes
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    raise LookupError(f"no fitted {class_name} in the schema")


def crafted(edit: Callable[[dict[str, Any], Path], None]) -> Callable[[Path, Path], Path]:
    """A builder: save the real pipeline with MLflow, then edit its skops schema."""
    def build(path: Path, marker: Path) -> Path:
        return edit_schema(save(pipeline(), path), lambda schema: edit(schema, marker))
    return build


def on_pipeline(payload: Callable[[Path], dict[str, Any]]) -> Callable[[Path, Path], Path]:
    """The payload as the Pipeline's `memory` attribute, rebuilt while the Pipeline is."""
    return crafted(lambda schema, marker: schema["content"]["content"].update(memory=payload(marker)))


def as_remainder_func(payload: Callable[[Path], dict[str, Any]]) -> Callable[[Path, Path], Path]:
    """The payload as the `func` of the passthrough FunctionTransformer, called on every scoring."""
    return crafted(lambda schema, marker: fitted_attributes(schema, "FunctionTransformer").update(
        func=payload(marker)))


def deep_in_categories(schema: dict[str, Any], marker: Path) -> None:
    """Pipeline > steps > ColumnTransformer > transformers_ > OneHotEncoder > categories_[0] > item 0."""
    categories = fitted_attributes(schema, "OneHotEncoder")["categories_"]["content"][0]
    categories["content"][0] = globals_call_node(RUNSTRING, python(marker))


# --- pickle-based payloads ----------------------------------------------------------------------------------------
class Boom:
    """Pickles as a call to exec: what any pickle-based model file can do on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (python(self.marker),)


class MarkerModel(mlflow.pyfunc.PythonModel):
    """A custom pyfunc whose loading runs its own code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def load_context(self, context: Any) -> None:
        Path(self.marker).write_text("pwned")

    def predict(self, context: Any, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
        return model_input


def pickle_renamed_skops(path: Path, marker: Path) -> Path:
    save(pipeline(), path)
    (path / "model.skops").write_bytes(pickle.dumps(Boom(marker)))
    return path


def loader_module_in_code(path: Path, marker: Path) -> Path:
    save(pipeline(), path)
    (path / "code").mkdir()
    (path / "code" / "evil_loader.py").write_text(f"{python(marker)}\n")
    tamper(path, loader_module="evil_loader", code="code")
    return path


def custom_pyfunc(path: Path, marker: Path) -> Path:
    mlflow.pyfunc.save_model(str(path), python_model=MarkerModel(str(marker)), pip_requirements=[])
    return path


def cloudpickle_sklearn(path: Path, marker: Path) -> Path:
    model = pipeline()
    model.boom = Boom(marker)  # type: ignore[attr-defined]
    return save(model, path, "cloudpickle")


# --- proofs that a payload is live --------------------------------------------------------------------------------
def skops_trusting_what_it_reports(model_dir: Path) -> None:
    """Load as the old scan did (trusting every type skops reports), then score."""
    file = model_dir / "model.skops"
    model = skops.io.load(file, trusted=skops.io.get_untrusted_types(file=file))
    with contextlib.suppress(Exception):  # a payload may break the model; it has run by then
        model.predict(training_frame()[0])


def unpickling(file_name: str) -> Callable[[Path], None]:
    return lambda model_dir: pickle.loads((model_dir / file_name).read_bytes())  # noqa: S301 - the proof


def mlflow_loading(model_dir: Path) -> None:
    """MLflow's own loader, in a separate process: it imports whatever the MLmodel points it at."""
    subprocess.run([sys.executable, "-c", "import sys, mlflow.pyfunc; mlflow.pyfunc.load_model(sys.argv[1])",
                    str(model_dir)], cwd=ROOT, capture_output=True, timeout=300, check=False,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})


@dataclass(frozen=True)
class Crafted:
    name: str
    build: Callable[[Path, Path], Path]  # (model folder, marker) -> model folder
    refused: str  # what a finding must name: the bad type or the reason
    prove: Callable[[Path], None] | None = None  # runs the payload the way a trusting loader would
    passed_old_scan: bool = False  # every type skops reports was under a prefix the old scan trusted


CORPUS = [
    Crafted("numpy-runstring-reduce-in-pipeline", on_pipeline(lambda m: globals_call_node(RUNSTRING, python(m))),
            RUNSTRING, skops_trusting_what_it_reports, passed_old_scan=True),
    Crafted("sklearn-function-reduce", on_pipeline(lambda m: call_node(SKLEARN_RUNNER, python(m))),
            SKLEARN_RUNNER, skops_trusting_what_it_reports, passed_old_scan=True),
    Crafted("sklearn-function-node", on_pipeline(lambda m: calling_dict(node(SKLEARN_RUNNER, "FunctionNode"),
                                                                        python(m))),
            SKLEARN_RUNNER, skops_trusting_what_it_reports, passed_old_scan=True),
    Crafted("scipy-function-imports-os-system",
            on_pipeline(lambda m: calling_dict(call_node(SCIPY_IMPORTER, "os", "system", None), shell(m))),
            SCIPY_IMPORTER, skops_trusting_what_it_reports, passed_old_scan=True),
    Crafted("builtins-eval", on_pipeline(lambda m: calling_dict(node("builtins.eval", "FunctionNode"), python(m))),
            "builtins.eval", skops_trusting_what_it_reports),
    Crafted("builtins-exec", on_pipeline(lambda m: node("builtins.exec", "ConstructorFromReduceNode",
                                                        content=tuple_node(json_node(python(m))))),
            "builtins.exec", skops_trusting_what_it_reports),
    Crafted("os-system", on_pipeline(lambda m: call_node("os.system", shell(m))), "os.system",
            skops_trusting_what_it_reports),
    Crafted("operator-methodcaller", as_remainder_func(
        lambda m: node("operator.methodcaller", "OperatorFuncNode",
                       attrs=tuple_node(json_node("to_csv"), json_node(str(m))))),
        "operator.methodcaller", skops_trusting_what_it_reports),
    # attrgetter reads any attribute of what it is applied to; no marker of its own, it must be refused all the same
    Crafted("operator-attrgetter", as_remainder_func(
        lambda m: node("operator.attrgetter", "OperatorFuncNode", attrs=tuple_node(json_node("to_csv")))),
        "operator.attrgetter"),
    Crafted("runstring-deep-in-the-estimator-tree", crafted(deep_in_categories), RUNSTRING,
            skops_trusting_what_it_reports, passed_old_scan=True),
    Crafted("pickle-renamed-model-skops", pickle_renamed_skops, "not a readable skops file",
            unpickling("model.skops")),
    Crafted("mlmodel-loader-module-in-code", loader_module_in_code, "loader_module is 'evil_loader'", mlflow_loading),
    Crafted("custom-pyfunc", custom_pyfunc, "loaded with cloudpickle", mlflow_loading),
    Crafted("cloudpickle-sklearn", cloudpickle_sklearn, "serialised with cloudpickle", unpickling("model.pkl")),
]


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_a_crafted_model_is_refused_before_any_of_it_runs(case: Crafted, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model_dir = case.build(tmp_path / "model", marker)
    if case.passed_old_scan:
        reported = skops.io.get_untrusted_types(file=model_dir / "model.skops")
        assert reported and all(name.startswith(OLD_PREFIXES) for name in reported), reported
    if case.prove is not None:
        case.prove(model_dir)
        assert marker.exists(), "the payload did not run even when trusted: this case would prove nothing"
        marker.unlink()

    scan = scan_model_dir(model_dir, SecuritySpec())

    assert not scan.passed
    assert any(case.refused in finding for finding in scan.findings), scan.findings
    with pytest.raises(UnsafeModelError):
        load_scanned_model(scan)
    assert not marker.exists()


def test_a_function_skops_trusts_by_default_is_refused(tmp_path: Path) -> None:
    """skops trusts numpy and scipy ufuncs without being told; the platform never loads a function."""
    model_dir = as_remainder_func(lambda marker: node("numpy.log1p", "FunctionNode"))(tmp_path / "m", tmp_path / "x")
    assert skops.io.get_untrusted_types(file=model_dir / "model.skops") == []
    scan = scan_model_dir(model_dir, SecuritySpec())
    assert not scan.passed
    assert any("numpy.log1p is a function" in finding for finding in scan.findings), scan.findings
    with pytest.raises(UnsafeModelError):
        load_scanned_model(scan)


def test_the_untampered_base_model_passes(tmp_path: Path) -> None:
    """The corpus starts from a model the scan accepts: each refusal is the payload's doing."""
    model = pipeline()
    scan = scan_model_dir(save(model, tmp_path / "m"), SecuritySpec())
    assert scan.passed, scan.findings
    frame = training_frame()[0]
    np.testing.assert_array_equal(load_scanned_model(scan).predict(frame), model.predict(frame))
