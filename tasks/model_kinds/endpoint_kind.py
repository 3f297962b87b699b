"""A model that runs outside the platform: a vendor's or another team's HTTP scoring endpoint (training.kind
'endpoint', the spec's `endpoint` section).

What is logged is data only: an MLmodel (flavor `modelops_endpoint`) and `endpoint.json`, the endpoint's
description (URL, protocol, model name, output, limits and the *name* of the Prefect Secret block holding the
bearer token, never the token). The scan reads that JSON like any other model file: the description must be one
the spec validates (https, or http to this machine or explicitly allowed; no user or password in the URL; no
unknown field such as a token), and it must name the very URL, model and credentials block the spec names, so a
crafted file cannot send the inputs, or the token of a block, anywhere the spec does not. At call time redirects
are never followed (a redirect could carry the token elsewhere).

Scoring speaks the Open Inference Protocol v2 (`POST {url}/v2/models/{model_name}/infer`): one input tensor per
feature column, named like the column; the output tensor the spec names holds the scores. Every failure (down,
timeout, 401/403, 3xx, non-JSON, wrong row count or shape) raises EndpointError naming what and how to fix it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from modelops.errors import ModelOpsError
from modelops.spec import EndpointSpec
from tasks.model_kinds.base import (
    Described, Predictor, ScanContext, ScanResult, probabilities, pyfunc_findings, read_model_file, scan_result,
)

FLAVOR = "modelops_endpoint"
DATA_FILE = "endpoint.json"
FORMAT = "modelops-endpoint/1"
MAX_DESCRIPTION_BYTES = 64 * 1024
# The fields that decide where inputs and the token go: a description must name the spec's own.
BOUND_TO_SPEC = ("url", "model_name", "model_version", "credentials_block", "protocol", "allow_http")


class EndpointError(ModelOpsError):
    """The scoring endpoint of an endpoint model did not give an answer the platform can use."""


def description_bytes(endpoint: EndpointSpec, task: str) -> bytes:
    return json.dumps({"format": FORMAT, "task": task, "endpoint": endpoint.model_dump(mode="json")}, indent=2,
                      sort_keys=True).encode()


def read_description(data: bytes) -> tuple[EndpointSpec, str] | str:
    """The endpoint a description file describes and the model's task, or why it is not a sound description."""
    from pydantic import ValidationError

    if len(data) > MAX_DESCRIPTION_BYTES:
        return f"the endpoint description has {len(data)} bytes, more than {MAX_DESCRIPTION_BYTES}"
    try:
        document = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        return f"the endpoint description is not JSON ({exc})"
    if not isinstance(document, dict) or document.get("format") != FORMAT or set(document) != {
            "format", "task", "endpoint"}:
        return f"the endpoint description is not a {FORMAT!r} document of format, task and endpoint"
    if document["task"] not in ("classification", "regression"):
        return f"the endpoint description's task {document['task']!r} is neither classification nor regression"
    try:
        return EndpointSpec.model_validate(document["endpoint"]), document["task"]
    except ValidationError as exc:
        return "the endpoint description is refused: " + "; ".join(
            f"{'.'.join(['endpoint', *map(str, e['loc'])])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors())


def scan(described: Described, context: ScanContext) -> ScanResult:
    flavor = described.flavors[FLAVOR]
    findings = pyfunc_findings(described.flavors, FLAVOR, None)
    if flavor.get("format") != FORMAT:
        findings.append(f"endpoint model format {flavor.get('format')!r} is refused: only {FORMAT!r} is read")
    read = read_model_file(described.folder, flavor.get("data", DATA_FILE))
    if not isinstance(read, str):
        described_endpoint = read_description(read[1])
        endpoint = described_endpoint[0] if not isinstance(described_endpoint, str) else None
        if isinstance(described_endpoint, str):
            findings.append(described_endpoint)
        elif context.endpoint is None:
            findings.append("the model is an endpoint description, but the spec describes no endpoint "
                            "(training.kind 'endpoint' and an endpoint section): refused")
        else:
            findings += [f"the description's {name} {getattr(endpoint, name)!r} is not the spec's endpoint.{name} "
                         f"{getattr(context.endpoint, name)!r}: a model may only call the endpoint its spec names; "
                         "register a new version after changing the spec"
                         for name in BOUND_TO_SPEC if getattr(endpoint, name) != getattr(context.endpoint, name)]
            if context.task is not None and described_endpoint[1] != context.task:
                findings.append(f"the description is of a {described_endpoint[1]} model, the spec's task is "
                                f"{context.task}")
    return scan_result("endpoint", "json", findings, described, read)


def bearer_token(block: str) -> str:
    """The token in a Prefect Secret block, read synchronously (the caller may be a thread of an event loop's
    process, never the loop itself)."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(block, _sync=True).get()  # type: ignore[call-arg]
    except ValueError as exc:
        raise EndpointError(f"no Prefect Secret block named {block!r} holds the endpoint's token ({exc})",
                            f"create it: Secret(value='<token>').save('{block}') or in the Prefect UI "
                            "(Blocks > Secret)") from exc
    if not isinstance(value, str) or not value:
        raise EndpointError(f"the Prefect Secret block {block!r} holds no token text",
                            "save the bearer token as the block's value")
    return value


V2_TYPES = {"f": "FP64", "i": "INT64", "u": "INT64", "b": "BOOL"}


def v2_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One v2 tensor per column: numbers as numpy arrays, which orjson writes without a Python object per value
    (NaN as JSON null: the protocol's JSON has no NaN), anything else as a list (missing values as null)."""
    inputs = []
    for name in frame.columns:
        values = frame[name]
        datatype = V2_TYPES.get(values.dtype.kind, "BYTES")
        data = values.to_numpy()
        if data.dtype == object or not data.flags.c_contiguous:  # text, or nullable numbers holding pd.NA
            data = [None if pd.isna(v) else v for v in values.tolist()]
        inputs.append({"name": str(name), "shape": [len(frame)], "datatype": datatype, "data": data})
    return inputs


def request_body(frame: pd.DataFrame) -> bytes:
    import orjson

    return orjson.dumps({"inputs": v2_inputs(frame)}, option=orjson.OPT_SERIALIZE_NUMPY)


class EndpointModel:
    """The platform's predict over an HTTP endpoint: rows in requests of at most max_rows_per_request, one pooled
    client per loaded version, the token read once from its block (and again after a 401: it may have rotated)."""

    calls_network = True  # the gateway scores it in a worker thread, off its event loop

    def __init__(self, endpoint: EndpointSpec, task: str) -> None:
        import httpx

        self.endpoint = endpoint
        self.task = task
        self.client = httpx.Client(timeout=endpoint.timeout_seconds, follow_redirects=False,
                                   limits=httpx.Limits(max_connections=16, max_keepalive_connections=8))
        self._token: str | None = None
        self._lock = threading.Lock()

    def headers(self, fresh: bool = False) -> dict[str, str]:
        block = self.endpoint.credentials_block
        if block is None:
            return {}
        with self._lock:
            if self._token is None or fresh:
                self._token = bearer_token(block)
            return {"Authorization": f"Bearer {self._token}"}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        step = self.endpoint.max_rows_per_request
        parts = [self._infer(frame.iloc[start:start + step]) for start in range(0, len(frame), step)]
        return np.concatenate(parts) if parts else np.empty((0, 2))

    def _post(self, body: bytes, fresh: bool) -> Any:
        import httpx

        url = self.endpoint.infer_url()
        try:
            return self.client.post(url, content=body, headers={"Content-Type": "application/json",
                                                                **self.headers(fresh)})
        except httpx.TimeoutException as exc:
            raise EndpointError(f"the scoring endpoint {url} did not answer within "
                                f"{self.endpoint.timeout_seconds:g} s ({type(exc).__name__})",
                                "check that the service is up, or raise endpoint.timeout_seconds / lower "
                                "endpoint.max_rows_per_request in the spec") from exc
        except httpx.HTTPError as exc:
            raise EndpointError(f"the scoring endpoint {url} cannot be reached ({type(exc).__name__}: {exc})",
                                "check that the service is up and endpoint.url in the spec is right") from exc

    def _infer(self, frame: pd.DataFrame) -> np.ndarray:
        body = request_body(frame)
        response = self._post(body, fresh=False)
        if response.status_code == 401 and self.endpoint.credentials_block is not None:
            response = self._post(body, fresh=True)  # the token may have been rotated since it was read
        self._check_status(response)
        return self._scores(response, len(frame))

    def _check_status(self, response: Any) -> None:
        url, status, block = self.endpoint.infer_url(), response.status_code, self.endpoint.credentials_block
        if status in (401, 403):
            raise EndpointError(
                f"the scoring endpoint {url} refused the credentials (HTTP {status})"
                + (f" from Prefect Secret block {block!r}" if block else " (the spec names no credentials_block)"),
                f"put a valid token for {self.endpoint.model_name} in the Prefect Secret block {block!r}" if block
                else "name the Prefect Secret block holding the token in endpoint.credentials_block")
        if 300 <= status < 400:
            raise EndpointError(f"the scoring endpoint {url} redirects (HTTP {status}) to "
                                f"{response.headers.get('location')!r}; redirects are never followed (they could "
                                "carry the token and the inputs elsewhere)",
                                "put the final address in endpoint.url and register a new version")
        if status >= 400:
            raise EndpointError(f"the scoring endpoint {url} answered HTTP {status}: {response.text[:300]!r}",
                                "check the inputs the endpoint expects (one v2 tensor per feature column) and its "
                                "model name, or ask its owner")

    def _scores(self, response: Any, rows: int) -> np.ndarray:
        url, name = self.endpoint.infer_url(), self.endpoint.output
        import orjson

        try:
            outputs = orjson.loads(response.content)["outputs"]
            tensor = next((o for o in outputs if isinstance(o, dict) and o.get("name") == name), None)
        except (ValueError, KeyError, TypeError) as exc:
            raise EndpointError(f"the scoring endpoint {url} did not answer a v2 inference response "
                                f"({type(exc).__name__}: {response.text[:200]!r})",
                                "check that endpoint.url and protocol name a v2 (Open Inference Protocol) "
                                "service") from exc
        if tensor is None:
            raise EndpointError(f"the scoring endpoint {url} answered no output named {name!r} (outputs: "
                                f"{[o.get('name') for o in outputs if isinstance(o, dict)]})",
                                "set endpoint.output to the output tensor holding the scores")
        try:
            values = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor.get("shape") or [-1])
        except (KeyError, ValueError, TypeError) as exc:
            raise EndpointError(f"the endpoint's output {name!r} is not a numeric tensor of its shape "
                                f"{tensor.get('shape')!r} ({exc})", "ask the endpoint's owner to fix its answer") \
                from exc
        if values.ndim == 0 or values.shape[0] != rows or values.ndim > 2:
            raise EndpointError(f"the endpoint's output {name!r} has shape {list(values.shape)} for {rows} input "
                                f"rows: one score (or one row of class scores) per input row is needed",
                                "ask the endpoint's owner, or name the right output in endpoint.output")
        if values.ndim == 2:
            if values.shape[1] == 1:
                values = values[:, 0]
            elif self.endpoint.positive_index >= values.shape[1]:
                raise EndpointError(f"endpoint.positive_index is {self.endpoint.positive_index}, but output {name!r} "
                                    f"has {values.shape[1]} columns", "set positive_index to the positive class's "
                                                                      "column (0-based)")
            else:
                values = values[:, self.endpoint.positive_index]
        return probabilities(values) if self.task == "classification" else values


def load(data: bytes, scan: ScanResult) -> Predictor:
    described = read_description(data)
    if isinstance(described, str):
        raise ValueError(described)
    return EndpointModel(*described)


def wrap(trained: Any) -> Predictor:
    if not isinstance(trained, EndpointModel):
        raise TypeError(f"{type(trained).__name__} is not an endpoint model")
    return trained


def save(folder: Path, model: EndpointModel, signature: Any = None, mlflow_model: Any = None) -> Path:
    """Write the description and an MLmodel naming it (no pyfunc flavor: MLflow has nothing to import)."""
    from mlflow.models import Model

    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATA_FILE).write_bytes(description_bytes(model.endpoint, model.task))
    mlflow_model.signature = signature
    mlflow_model.add_flavor(FLAVOR, data=DATA_FILE, format=FORMAT)
    mlflow_model.save(str(folder / "MLmodel"))
    return folder


def log(trained: Any, signature: Any, pip_requirements: list[str], model_class: str | None = None) -> Any:
    """Log the description inside the active run (Model.log calls save_model); requirements: none run here."""
    from mlflow.models import Model

    def save_model(path: str, mlflow_model: Model, **_: Any) -> None:
        save(Path(path), wrap(trained), signature, mlflow_model)

    return Model.log(artifact_path=None, name="model", flavor=SimpleNamespace(save_model=save_model))
