from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from modelops.spec import SecuritySpec
from modelops.errors import UnsafeModelError
from modelops.tasks.security import load_scanned_model, scan_model_dir


class HomeMadeClassifier(ClassifierMixin, BaseEstimator):
    """A type no spec trusts: loading it would import and run this module's code."""

    def fit(self, X, y):  # type: ignore[no-untyped-def]
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):  # type: ignore[no-untyped-def]
        return np.zeros(len(X), dtype=int)


def fitted() -> LogisticRegression:
    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))


def save(model, path: Path, fmt: str) -> Path:  # type: ignore[no-untyped-def]
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model)) if fmt == "skops" else None
    mlflow.sklearn.save_model(model, str(path), serialization_format=fmt, skops_trusted_types=trusted)
    return path


def test_skops_model_of_trusted_types_passes(tmp_path: Path) -> None:
    result = scan_model_dir(save(fitted(), tmp_path / "m", "skops"), SecuritySpec())
    assert result.passed and result.serialization == "skops" and result.findings == []


def test_pickle_model_is_refused_unless_the_spec_accepts_the_risk(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m", "cloudpickle")
    refused = scan_model_dir(path, SecuritySpec())
    assert not refused.passed and "runs arbitrary code on load" in refused.findings[0]
    assert scan_model_dir(path, SecuritySpec(allow_pickle=True)).passed


def test_skops_file_with_an_untrusted_type_is_refused_by_name(tmp_path: Path) -> None:
    model = HomeMadeClassifier().fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]))
    result = scan_model_dir(save(model, tmp_path / "m", "skops"), SecuritySpec())
    assert not result.passed
    assert any("HomeMadeClassifier" in finding for finding in result.findings)


def test_a_folder_that_is_not_a_model_fails(tmp_path: Path) -> None:
    assert not scan_model_dir(tmp_path, SecuritySpec()).passed


def tamper(path: Path, **pyfunc: object) -> None:
    import yaml

    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"].update(pyfunc)
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def test_a_model_whose_mlmodel_points_the_loader_elsewhere_is_refused(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m", "skops")
    (path / "code").mkdir()
    (path / "code" / "evil_loader.py").write_text("open('/tmp/pwned', 'w').write('x')\n")
    tamper(path, loader_module="evil_loader", code="code")
    result = scan_model_dir(path, SecuritySpec())
    assert not result.passed
    assert any("loader_module is 'evil_loader'" in f for f in result.findings)
    assert any("ships code paths" in f for f in result.findings)
    with pytest.raises(UnsafeModelError):
        load_scanned_model(result)


def test_a_model_pointing_pyfunc_at_another_file_is_refused(tmp_path: Path) -> None:
    path = save(fitted(), tmp_path / "m", "skops")
    tamper(path, model_path="other.pkl")
    assert any("is not the scanned file" in f for f in scan_model_dir(path, SecuritySpec()).findings)


def test_the_scanned_file_is_what_loads_and_predicts(tmp_path: Path) -> None:
    model = fitted()
    path = save(model, tmp_path / "m", "skops")
    tamper(path, predict_fn="predict_proba")
    loaded = load_scanned_model(scan_model_dir(path, SecuritySpec()))
    frame = np.array([[0.5], [2.5]])
    np.testing.assert_allclose(loaded.predict(frame), model.predict_proba(frame))
