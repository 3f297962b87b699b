"""For each model kind, a file crafted to run code on load: a really trained model on real data whose stored files
were then tampered with, registered by URI. None runs its code (the marker file never appears), each fails
validation with a clear reason, is audited, rejected at approval and never deploys."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Callable

import pytest
import yaml

from modelops.errors import NotApprovedError
from tests.tasks.kind_dirs import custom_op_model, marker_pickle

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api", "kinds_config")]


def pickle_instead(file: str) -> Callable[[Path, Path], None]:
    def craft(folder: Path, marker: Path) -> None:
        (folder / file).write_bytes(marker_pickle(marker))
    return craft


def cloudpickle_loader(folder: Path, marker: Path) -> None:
    """Point MLflow's pyfunc loader at a pickled python_model that runs code when MLflow loads it."""
    (folder / "python_model.pkl").write_bytes(marker_pickle(marker))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"].update(loader_module="mlflow.pyfunc.model", python_model="python_model.pkl")
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def custom_operator(folder: Path, marker: Path) -> None:
    (folder / "model.onnx").write_bytes(custom_op_model().SerializeToString())


CRAFTS = {
    # model, the stored file that marks its folder, how it is tampered with, what the refusal says
    "xgboost-pickle": ("bike-demand-xgb", "model.ubj", pickle_instead("model.ubj"), "is a pickle"),
    "lightgbm-tampered-mlmodel": ("flight-delay-lgbm", "model.lgb", cloudpickle_loader,
                                  "loader_module is 'mlflow.pyfunc.model'"),
    "onnx-custom-op": ("flight-delay-onnx", "model.onnx", custom_operator, "custom operator(s) com.example.evil"),
    "custom-pickled-data": ("flight-delay-scorecard", "arrays.npz", pickle_instead("arrays.npz"),
                            "the data file is a pickle"),
}


def crafted_run(model: str, stored_file: str, craft: Callable[[Path, Path], None], marker: Path) -> str:
    """Log a model really trained on two weeks of real data, then tamper with its stored files."""
    from modelops.platform import get_platform
    from modelops.spec import Window, load_spec
    from tasks.training import prepare_training, train_and_log

    platform = get_platform()
    spec = load_spec(model)
    start = spec.training.window.start
    frame, inputs = prepare_training(spec, Window(start=start, end=date(start.year, start.month, 15)))
    logged = train_and_log(spec, frame, inputs, platform.catalog)
    [stored] = list(platform.settings.artifact_root.rglob(stored_file))  # the one model logged here
    craft(stored.parent, marker)
    return logged.model_uri


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_a_crafted_file_of_each_kind_runs_no_code_is_refused_and_audited(state_home: Path, tmp_path: Path,
                                                                         craft: str) -> None:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.validate import validate
    from modelops.platform import get_platform

    model, stored_file, tamper, reason = CRAFTS[craft]
    marker = tmp_path / "marker"
    version = register(model=model, model_uri=crafted_run(model, stored_file, tamper, marker)).version
    validated = validate(model=model, version=version)
    assert not validated.passed
    assert any(reason in failure for failure in validated.failures), validated.failures
    assert approve(model=model, version=version).status == "rejected"
    with pytest.raises(NotApprovedError):
        deploy(model=model, version=version)
    assert not marker.exists()
    trail = get_platform().store.audit_trail(model)
    refusals = [e for e in trail if e.stage == "validate" and e.outcome == "failed"]
    assert refusals and reason in str(refusals[-1].evidence)
    assert ("approve", "rejected") in [(e.stage, e.outcome) for e in trail]
