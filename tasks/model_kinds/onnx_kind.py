"""ONNX models from any framework that exports them, run with onnxruntime (CPU, one thread) from the scanned bytes.

An ONNX file is a protobuf of standard operators, but onnxruntime also runs operators from custom operator
libraries (native code) and reads tensors from external files the model names. The scan therefore refuses every
node, graph or function whose domain is not the standard one ('' / 'ai.onnx') or the classical-ML one
('ai.onnx.ml'), at any depth (subgraphs of If/Loop/Scan, model-local functions), and every tensor stored outside
the file: the scan pins the bytes of one file, so external data (wherever it points, and above all outside the
folder) would be loaded unscanned. MLmodel session options and providers are ignored: the platform sets its own.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd

from tasks.model_kinds.base import (
    Described, Predictor, ScanContext, ScanResult, pyfunc_findings, read_model_file, scan_result,
)

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}
PROBABILITY_OUTPUTS = ("probabilities", "output_probability")


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph held in its nodes' attributes, iteratively (a crafted file may nest deeply)."""
    pending = [graph]
    while pending:
        current = pending.pop()
        yield current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    pending.append(attribute.g)
                pending.extend(attribute.graphs)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors


def _external_finding(tensor: Any) -> str:
    location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
    where = "outside the model folder" if location.startswith(("/", "\\")) or ".." in location.replace("\\", "/") \
        .split("/") else "in another file"
    return (f"tensor {tensor.name!r} keeps its data {where} ({location!r}), which would be read unscanned; save "
            "the model with its tensors inside the one file (onnx.save_model(..., save_as_external_data=False))")


def onnx_findings(data: bytes) -> list[str]:
    """Why an ONNX file may not run here: custom operator domains, external data, or not ONNX at all."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not an ONNX model
        return [f"the model file is not an ONNX model ({type(exc).__name__}: {exc})"]
    findings = [f"the model imports operator set domain {o.domain!r}: only the standard ONNX domains "
                f"{sorted(STANDARD_DOMAINS)} run here (custom operator libraries run native code); export the "
                "model without custom operators" for o in model.opset_import if o.domain not in STANDARD_DOMAINS]
    graphs = [*_graphs(model.graph), *(g for f in model.functions for n in f.node for a in n.attribute
                                       for g in ([a.g] if a.HasField("g") else []) + list(a.graphs))]
    nodes = [*(n for g in graphs for n in g.node), *(n for f in model.functions for n in f.node)]
    custom = sorted({f"{n.domain}::{n.op_type}" for n in nodes if n.domain not in STANDARD_DOMAINS})
    if custom:
        findings.append(f"custom operator(s) {', '.join(custom)}: only the standard ONNX domains "
                        f"{sorted(STANDARD_DOMAINS)} run here (a custom operator library runs native code); export "
                        "the model without custom operators")
    findings += [_external_finding(t) for g in graphs for t in _tensors(g)
                 if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)]
    return findings


def scan(described: Described, context: ScanContext) -> ScanResult:
    flavor = described.flavors["onnx"]
    findings = pyfunc_findings(described.flavors, "onnx", "mlflow.onnx")
    if flavor.get("onnx_session_options"):
        findings.append("the MLmodel sets onnx_session_options, which could register native operator libraries; "
                        "log the model without them (the platform sets its own)")
    read = read_model_file(described.folder, flavor.get("data", "model.onnx"))
    if not isinstance(read, str):
        findings += onnx_findings(read[1])
    return scan_result("onnx", "onnx", findings, described, read)


def session(data: bytes) -> Any:
    """An onnxruntime session on the CPU with one thread (one worker per core serves), no custom operators."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An onnxruntime session behind the platform's predict. Inputs: one tensor per column (named like the
    columns), or one 2-D tensor of all columns in the frame's order. Output: class probabilities when the model
    has them, else its first output."""

    def __init__(self, data: bytes) -> None:
        self.session = session(data)
        self.inputs = [(i.name, object if i.type == "tensor(string)" else _numpy_type(i.type))
                       for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = next((name for name in PROBABILITY_OUTPUTS if name in outputs), outputs[0])

    def feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1 and self.inputs[0][0] not in frame.columns:
            name, dtype = self.inputs[0]
            return {name: frame.to_numpy(dtype=dtype)}
        return {name: frame[name].to_numpy(dtype=dtype).reshape(-1, 1) for name, dtype in self.inputs}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.session.run([self.output], self.feeds(frame))[0])


def _numpy_type(onnx_type: str) -> Any:
    return {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32, "tensor(bool)": np.bool_}.get(onnx_type, np.float32)


def load(data: bytes, scan: ScanResult) -> Predictor:
    return OnnxModel(data)


def _bytes_of(trained: Any) -> bytes:
    if isinstance(trained, bytes):
        return trained
    if hasattr(trained, "SerializeToString"):
        return trained.SerializeToString()
    raise TypeError(f"{type(trained).__name__} is not an ONNX ModelProto or its bytes")


def wrap(trained: Any) -> Predictor:
    data = _bytes_of(trained)
    findings = onnx_findings(data)
    if findings:  # the trainer's own output is held to the scan too: a refused model is not logged
        raise TypeError("; ".join(findings))
    return OnnxModel(data)


def log(trained: Any, signature: Any, pip_requirements: list[str], model_class: str | None = None) -> Any:
    import mlflow.onnx
    import onnx

    return mlflow.onnx.log_model(onnx.load_model_from_string(_bytes_of(trained)), name="model", signature=signature,
                                 pip_requirements=pip_requirements, save_as_external_data=False)
