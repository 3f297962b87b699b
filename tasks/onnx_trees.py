"""scikit-learn's HistGradientBoosting models as ONNX trees computed in double precision.

skl2onnx 1.20 writes these models with the float32 attributes of ai.onnx.ml opset 1 (and its leaf nodes carry a
Python bool that protobuf 7 refuses), so its scores drift from scikit-learn's by far more than 1e-6. This converter
writes ai.onnx.ml opset 5's TreeEnsemble instead, whose thresholds, leaf values and output all have the input's
type: with double inputs every split compares exactly what scikit-learn compares and the sum is taken in double.
Only numerical splits are written; a model with categorical splits (or more than one tree per iteration:
multiclass) raises NotImplementedError and keeps scoring natively.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import numpy_helper
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

ML_OPSET = 5  # TreeEnsemble: typed thresholds and leaf weights
# skl2onnx 1.20 refuses to write a model above ai.onnx.ml opset 3: the node is declared at 3 and the model's
# opset raised to 5 afterwards (raise_ml_opset); the other ai.onnx.ml operators it writes are unchanged since.
SKL2ONNX_ML_OPSET = 3
BRANCH_LEQ = 0
SUM = 1
# Regression losses whose prediction is the raw score (identity link) or its exponential (log link).
IDENTITY_LOSSES = {"HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss"}
LOG_LOSSES = {"HalfPoissonLoss", "HalfGammaLoss", "HalfTweedieLoss"}


def tree_ensemble_attributes(model: Any) -> dict[str, Any]:
    """The TreeEnsemble attributes of a fitted HistGradientBoosting model with one tree per iteration."""
    categorical = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None or (categorical is not None and np.any(categorical)):
        raise NotImplementedError("categorical splits are not converted")
    if model.n_trees_per_iteration_ != 1:
        raise NotImplementedError("multiclass models (several trees per iteration) are not converted")
    nodes: dict[str, list[int]] = {k: [] for k in ("featureids", "truenodeids", "trueleafs", "falsenodeids",
                                                   "falseleafs", "missing")}
    splits: list[float] = []
    leaves: list[float] = []
    roots: list[int] = []
    for (predictor,) in model._predictors:
        table = predictor.nodes
        roots.append(len(splits))
        if table["is_leaf"][0]:  # a tree that is one leaf: a split whose both sides reach it
            leaves.append(float(table["value"][0]))
            _add_split(nodes, splits, 0, 0.0, (len(leaves) - 1, 1), (len(leaves) - 1, 1), 0)
            continue
        # Index the tree's splits and leaves in the two separate lists the operator keeps.
        split_at, leaf_at = {}, {}
        for i in range(len(table)):
            if table["is_leaf"][i]:
                leaf_at[i] = len(leaves)
                leaves.append(float(table["value"][i]))
            else:
                split_at[i] = len(splits) + len(split_at)
        for i in sorted(split_at):
            if table["is_categorical"][i]:
                raise NotImplementedError("categorical splits are not converted")
            left, right = int(table["left"][i]), int(table["right"][i])
            _add_split(nodes, splits, int(table["feature_idx"][i]), float(table["num_threshold"][i]),
                       (leaf_at[left], 1) if left in leaf_at else (split_at[left], 0),
                       (leaf_at[right], 1) if right in leaf_at else (split_at[right], 0),
                       int(table["missing_go_to_left"][i]))
    return {"aggregate_function": SUM, "post_transform": 0, "n_targets": 1, "tree_roots": roots,
            "nodes_featureids": nodes["featureids"], "nodes_truenodeids": nodes["truenodeids"],
            "nodes_trueleafs": nodes["trueleafs"], "nodes_falsenodeids": nodes["falsenodeids"],
            "nodes_falseleafs": nodes["falseleafs"], "nodes_missing_value_tracks_true": nodes["missing"],
            "nodes_modes": numpy_helper.from_array(np.full(len(splits), BRANCH_LEQ, dtype=np.uint8)),
            "nodes_splits": numpy_helper.from_array(np.asarray(splits, dtype=np.float64)),
            "leaf_targetids": [0] * len(leaves),
            "leaf_weights": numpy_helper.from_array(np.asarray(leaves, dtype=np.float64))}


def _add_split(nodes: dict[str, list[int]], splits: list[float], feature: int, threshold: float,
               true: tuple[int, int], false: tuple[int, int], missing_goes_true: int) -> None:
    # BRANCH_LEQ sends x <= threshold to the true side, which is scikit-learn's left child.
    nodes["featureids"].append(feature)
    nodes["truenodeids"].append(true[0])
    nodes["trueleafs"].append(true[1])
    nodes["falsenodeids"].append(false[0])
    nodes["falseleafs"].append(false[1])
    nodes["missing"].append(missing_goes_true)
    splits.append(threshold)


def _raw_score(scope: Any, operator: Any, container: Any) -> str:
    """raw = baseline + sum of the trees, in double."""
    model = operator.raw_operator
    columns = operator.input_full_names
    if len(columns) > 1:  # a model fit on the frame itself gets one input per column: side by side, in order
        joined = scope.get_unique_variable_name("features")
        container.add_node("Concat", columns, joined, axis=1, name=scope.get_unique_operator_name("Concat"))
        columns = [joined]
    features = scope.get_unique_variable_name("features_double")
    container.add_node("Cast", columns[0], features, to=11,  # 11: DOUBLE
                       name=scope.get_unique_operator_name("Cast"))
    trees = scope.get_unique_variable_name("trees")
    container.add_node("TreeEnsemble", features, trees, op_domain="ai.onnx.ml", op_version=SKL2ONNX_ML_OPSET,
                       name=scope.get_unique_operator_name("TreeEnsemble"), **tree_ensemble_attributes(model))
    baseline = scope.get_unique_variable_name("baseline")
    container.add_initializer(baseline, 11, [1, 1], [float(np.ravel(model._baseline_prediction)[0])])
    raw = scope.get_unique_variable_name("raw")
    container.add_node("Add", [trees, baseline], raw, name=scope.get_unique_operator_name("Add"))
    return raw


def convert_classifier(scope: Any, operator: Any, container: Any) -> None:
    """Binary classifier: probabilities [1 - p, p] with p = sigmoid(raw), label = the likelier class."""
    model = operator.raw_operator
    if len(model.classes_) != 2:
        raise NotImplementedError("only binary classifiers are converted")
    raw = _raw_score(scope, operator, container)
    positive = scope.get_unique_variable_name("positive")
    container.add_node("Sigmoid", raw, positive, name=scope.get_unique_operator_name("Sigmoid"))
    one = scope.get_unique_variable_name("one")
    container.add_initializer(one, 11, [1, 1], [1.0])
    negative = scope.get_unique_variable_name("negative")
    container.add_node("Sub", [one, positive], negative, name=scope.get_unique_operator_name("Sub"))
    container.add_node("Concat", [negative, positive], operator.outputs[1].full_name, axis=1,
                       name=scope.get_unique_operator_name("Concat"))
    index = scope.get_unique_variable_name("index")
    container.add_node("ArgMax", operator.outputs[1].full_name, index, axis=1, keepdims=0,
                       name=scope.get_unique_operator_name("ArgMax"))
    classes = scope.get_unique_variable_name("classes")
    container.add_initializer(classes, 7, [2], [int(c) for c in model.classes_])  # 7: INT64
    container.add_node("Gather", [classes, index], operator.outputs[0].full_name, axis=0,
                       name=scope.get_unique_operator_name("Gather"))


def convert_regressor(scope: Any, operator: Any, container: Any) -> None:
    model = operator.raw_operator
    loss = type(model._loss).__name__
    if loss not in IDENTITY_LOSSES | LOG_LOSSES:
        raise NotImplementedError(f"the {loss} loss's link is not converted")
    raw = _raw_score(scope, operator, container)
    container.add_node("Exp" if loss in LOG_LOSSES else "Identity", raw, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Link"))


def classifier_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType

    if not all(isinstance(c, (int, np.integer)) for c in operator.raw_operator.classes_):
        raise NotImplementedError("only integer class labels are converted")
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = Int64TensorType([rows])
    operator.outputs[1].type = DoubleTensorType([rows, 2])


def regressor_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType([operator.inputs[0].get_first_dimension(), 1])


def raise_ml_opset(model: Any) -> Any:
    """The converted model, importing ai.onnx.ml at ML_OPSET (where TreeEnsemble exists)."""
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, ML_OPSET)
    return model


def register() -> None:
    """Make skl2onnx use these converters (idempotent; skl2onnx keeps one converter per class)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(HistGradientBoostingClassifier, "ModelOpsHistGradientBoostingClassifier",
                                classifier_shape, convert_classifier,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    update_registered_converter(HistGradientBoostingRegressor, "ModelOpsHistGradientBoostingRegressor",
                                regressor_shape, convert_regressor)
