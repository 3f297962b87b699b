from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin

from modelops.errors import UnsafeModelError
from modelops.spec import SecuritySpec, parse_spec
from tasks.security import PLATFORM_TRUSTED_TYPES, allow_list, load_scanned_model, scan_model_dir
from tests.tasks.model_dirs import fitted, save, tamper

ROOT = Path(__file__).resolve().parents[2]
HOME_MADE = "tests.tasks.test_security.HomeMadeClassifier"


class HomeMadeClassifier(ClassifierMixin, BaseEstimator):
    """A class on no allow-list: loading it would import and run this module's code."""

    def fit(self, X, y):  # type: ignore[no-untyped-def]
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):  # type: ignore[no-untyped-def]
        return np.zeros(len(X), dtype=int)


def home_made(path: Path) -> Path:
    return save(HomeMadeClassifier().fit(np.zeros((4, 1)), np.array([0, 1, 0, 1])), path)


def test_skops_model_of_trusted_types_passes(tmp_path: Path) -> None:
    result = scan_model_dir(save(fitted(), tmp_path / "m", "skops"), SecuritySpec())
    assert result.passed and result.serialization == "skops" and result.findings == []


def test_pickle_model_is_refused_unless_the_spec_accepts_the_risk(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m", "cloudpickle")
    refused = scan_model_dir(path, SecuritySpec())
    assert not refused.passed and "runs arbitrary code on load" in refused.findings[0]
    assert scan_model_dir(path, SecuritySpec(allow_pickle=True)).passed


def test_skops_file_with_a_class_off_the_allow_list_is_refused_by_name_with_the_fix(tmp_path: Path) -> None:
    result = scan_model_dir(home_made(tmp_path / "m"), SecuritySpec())
    assert not result.passed
    assert any(HOME_MADE in finding and f"add '{HOME_MADE}' to validation.security.trusted_types" in finding
               for finding in result.findings), result.findings


def test_a_reviewed_class_added_to_the_spec_allow_list_loads(tmp_path: Path) -> None:
    result = scan_model_dir(home_made(tmp_path / "m"), SecuritySpec(trusted_types=[HOME_MADE]))
    assert result.passed and result.trusted_types == [HOME_MADE]
    assert isinstance(load_scanned_model(result).estimator, HomeMadeClassifier)


def test_a_function_on_the_spec_allow_list_fails_the_scan(tmp_path: Path) -> None:
    runstring = "numpy.testing._private.utils.runstring"
    result = scan_model_dir(save(fitted(), tmp_path / "m"), SecuritySpec(trusted_types=[runstring]))
    assert not result.passed
    assert any(f"allow-list entry {runstring} is a function, not a class" in f for f in result.findings)


@pytest.mark.parametrize("entry, reason", [
    ("operator.methodcaller", "calls any function it is given"),
    ("sklearn.no_such_module.Estimator", "does not resolve"),
])
def test_an_allow_list_entry_that_is_no_safe_class_is_a_finding(entry: str, reason: str) -> None:
    allowed, findings = allow_list(SecuritySpec(trusted_types=[entry]))
    assert entry not in allowed and any(reason in f for f in findings), findings


def test_the_platform_allow_list_is_exact_classes() -> None:
    allowed, findings = allow_list(SecuritySpec())
    assert findings == [] and allowed == set(PLATFORM_TRUSTED_TYPES)


@pytest.mark.parametrize("model", ["flight-delay", "bike-demand"])
def test_a_shipped_model_passes_with_the_default_allow_list_and_predicts_the_same(model: str, tmp_path: Path) -> None:
    """The real training code and data of a shipped spec (two weeks of its window, to stay quick)."""
    spec = parse_spec(ROOT / "configs" / "models" / f"{model}.yaml")
    start = spec.training.window.start
    frame = spec.entry("loader")(start, start + timedelta(days=14))
    features = frame[spec.data.features.all]
    estimator = spec.entry("trainer")(features, frame[spec.data.target], spec.training.params)

    result = scan_model_dir(save(estimator, tmp_path / "m"), SecuritySpec())

    assert result.passed, result.findings
    assert result.trusted_types == ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    loaded = load_scanned_model(result).estimator
    np.testing.assert_array_equal(loaded.predict(features), estimator.predict(features))
    if spec.task == "classification":
        np.testing.assert_array_equal(loaded.predict_proba(features), estimator.predict_proba(features))


def test_a_folder_that_is_not_a_model_fails(tmp_path: Path) -> None:
    assert not scan_model_dir(tmp_path, SecuritySpec()).passed


def test_a_model_pointing_pyfunc_at_another_file_is_refused(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m", "skops")
    tamper(path, model_path="other.pkl")
    assert any("is not the scanned file" in f for f in scan_model_dir(path, SecuritySpec()).findings)


def test_a_model_file_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    save(fitted(), tmp_path / "elsewhere")
    path = save(fitted(), tmp_path / "m")
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "../elsewhere/model.skops"
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    tamper(path, model_path="../elsewhere/model.skops")
    result = scan_model_dir(path, SecuritySpec())
    assert not result.passed and any("lies outside the model folder" in f for f in result.findings)


def test_the_scanned_file_is_what_loads_and_predicts(tmp_path: Path) -> None:
    model = fitted()
    path = save(model, tmp_path / "m", "skops")
    tamper(path, predict_fn="predict_proba")
    loaded = load_scanned_model(scan_model_dir(path, SecuritySpec()))
    frame = np.array([[0.5], [2.5]])
    np.testing.assert_allclose(loaded.predict(frame), model.predict_proba(frame))


def test_a_file_changed_after_the_scan_is_not_loaded(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m")
    scan = scan_model_dir(path, SecuritySpec())
    (path / "model.skops").write_bytes((home_made(tmp_path / "other") / "model.skops").read_bytes())
    with pytest.raises(UnsafeModelError, match="changed after the security scan"):
        load_scanned_model(scan)


def test_a_tree_pointing_outside_its_arrays_is_refused_on_load(tmp_path: Path) -> None:
    """Only trusted classes, so the scan passes; but child indices far outside the node array would make the
    compiled predict read arbitrary memory (a crash, seen as exit 139). Loading refuses it first."""
    import io
    import zipfile

    from sklearn.ensemble import HistGradientBoostingRegressor

    X = np.random.default_rng(0).normal(size=(200, 3))
    model = HistGradientBoostingRegressor(max_iter=3).fit(X, X[:, 0])
    path = save(model, tmp_path / "m")
    with zipfile.ZipFile(path / "model.skops") as source:
        members = {name: source.read(name) for name in source.namelist()}
    arrays = {name: np.load(io.BytesIO(data), allow_pickle=False) for name, data in members.items()
              if name.endswith(".npy")}
    node_arrays = {name: nodes for name, nodes in arrays.items() if nodes.dtype.names and "left" in nodes.dtype.names}
    assert node_arrays
    for name, nodes in node_arrays.items():
        nodes["left"], nodes["right"], nodes["is_leaf"] = 2**31 - 1000, 2**31 - 1000, 0
        buffer = io.BytesIO()
        np.save(buffer, nodes, allow_pickle=False)
        members[name] = buffer.getvalue()
    with zipfile.ZipFile(path / "model.skops", "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    scan = scan_model_dir(path, SecuritySpec())
    assert scan.passed  # nothing but trusted classes: the lie is inside the arrays
    with pytest.raises(UnsafeModelError, match="point at children outside the tree"):
        load_scanned_model(scan)
