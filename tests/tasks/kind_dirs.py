"""MLflow model folders of the non-scikit-learn kinds, saved by MLflow (or the custom kind's own save), and the
crafted files the scan must refuse: pickles that write a marker file when loaded, tampered MLmodels, custom ops."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

SCORECARD = "examples.scorecard:Scorecard"


def frame(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic rows for targeted unit tests: two numbers and a category, a binary target."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({"x": rng.normal(size=rows), "y": rng.normal(size=rows),
                             "group": rng.choice(["a", "b", "c"], size=rows)})
    target = ((features["x"] + (features["group"] == "b")) > 0.3).astype(int).to_numpy()
    return features, target


class WritesMarker:
    """Unpickling it runs a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def marker_pickle(marker: Path) -> bytes:
    return pickle.dumps(WritesMarker(marker))


def save_xgboost(path: Path, fmt: str = "ubj") -> Path:
    import mlflow.xgboost
    import xgboost

    features, target = frame()
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, enable_categorical=True, n_jobs=1)
    model.fit(features.astype({"group": "category"}), target)
    mlflow.xgboost.save_model(model, str(path), model_format=fmt, pip_requirements=["xgboost-cpu"])
    return path


def save_lightgbm(path: Path, booster: bool = True) -> Path:
    import lightgbm
    import mlflow.lightgbm

    features, target = frame()
    features = features.astype({"group": "category"})
    settings = {"objective": "binary", "verbose": -1, "num_threads": 1}
    model = (lightgbm.train(settings, lightgbm.Dataset(features, target), 10) if booster
             else lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(features, target))
    mlflow.lightgbm.save_model(model, str(path), pip_requirements=["lightgbm"])
    return path


def save_onnx(path: Path, model: Any = None) -> Path:
    import mlflow.onnx
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    features, target = frame()
    numbers = features[["x", "y"]].to_numpy(dtype=np.float32)
    if model is None:
        model = to_onnx(LogisticRegression().fit(numbers, target), numbers[:1], options={"zipmap": False},
                        target_opset=17)
    mlflow.onnx.save_model(model, str(path), pip_requirements=["onnxruntime"])
    return path


def save_custom(path: Path, model_class: str = SCORECARD) -> Path:
    from examples.scorecard import Scorecard
    from tasks.model_kinds import custom_kind

    features, target = frame()
    return custom_kind.save(path, Scorecard.fit(features, pd.Series(target), categorical=["group"]), model_class, [])


def edit_flavors(path: Path, **flavors: dict[str, Any]) -> Path:
    """Rewrite settings of the MLmodel's flavors (a flavor set to None is removed)."""
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    for name, settings in flavors.items():
        if settings is None:
            mlmodel["flavors"].pop(name, None)
        else:
            mlmodel["flavors"].setdefault(name, {}).update(settings)
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return path


def custom_op_model() -> Any:
    """A valid ONNX graph whose one node is a custom operator (a library would run it as native code)."""
    from onnx import TensorProto, helper

    node = helper.make_node("RunShell", ["x"], ["y"], domain="com.example.evil")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.example.evil", 1)])


def external_data_model(location: str) -> Any:
    """A model whose weight tensor says its data lives in a file at `location`."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    node = helper.make_node("Mul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
