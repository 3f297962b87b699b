"""The scoring worker of a model that runs in its own environment, and the wire format both sides speak.

This file is run as a script by the environment's own Python (`python -I env_worker.py`: isolated mode, so neither
the project nor the user's site-packages are on its path): it may import only the standard library and what every
model environment holds (numpy, pandas, scikit-learn, skops). The platform imports it too, for the same wire format
and for the tree checks that loading a scikit-learn model always runs (tasks.security), so both sides check alike.

Protocol, over the worker's stdin and stdout (a private copy of fd 1: whatever a library prints goes to stderr):
one message is a little-endian u32 header length, a JSON header and the binary buffers the header lists by length.
Frames travel column by column as raw numpy buffers (text as concatenated UTF-8 with offsets and a missing-value
mask), never pickled and never row by row. Requests: `hello` (the versions installed), `load` (the scanned model
bytes, their sha256 and the types the scan approved), `predict` (a frame; answers the model's output array) and
`train` (run a training entry point on a frame; answers the skops bytes of what it returned).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from typing import Any, BinaryIO, Sequence

import numpy as np

PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "skops")
_LENGTH = struct.Struct("<I")
NUMERIC_KINDS = "biufcmM"  # numbers and dates travel as their raw buffers


# --- wire format -----------------------------------------------------------------------------------------------
def write_message(stream: BinaryIO, header: dict[str, Any], buffers: Sequence[bytes] = ()) -> None:
    header = {**header, "buffers": [len(b) for b in buffers]}
    encoded = json.dumps(header).encode()
    stream.write(_LENGTH.pack(len(encoded)) + encoded)
    for buffer in buffers:
        stream.write(buffer)
    stream.flush()


# A message's declared sizes come from the other process, which may be broken: bounded before anything is read,
# and read in chunks, so a wrong length costs at most what really arrives. Generous for real use: a header holds
# column descriptions and training parameters; the buffers a model file, a frame or an output.
MAX_HEADER_BYTES = 64 << 20
MAX_MESSAGE_BYTES = 8 << 30
_CHUNK = 1 << 20


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next message, or None when the other side closed the stream (mid-message included); ValueError for a
    message whose declared sizes are malformed or beyond the bounds."""
    raw = _read_exactly(stream, _LENGTH.size)
    if raw is None:
        return None
    size = _LENGTH.unpack(raw)[0]
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"a message header of {size} bytes is over the {MAX_HEADER_BYTES} allowed")
    encoded = _read_exactly(stream, size)
    if encoded is None:
        return None
    header = json.loads(encoded)
    sizes = header.pop("buffers", []) if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise ValueError("a message header does not list its buffer sizes as whole numbers")
    if sum(sizes) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message of {sum(sizes)} bytes is over the {MAX_MESSAGE_BYTES} allowed")
    buffers = []
    for size in sizes:
        buffer = _read_exactly(stream, size) if size else b""
        if buffer is None:
            return None
        buffers.append(buffer)
    return header, buffers


def encode_array(array: np.ndarray) -> tuple[dict[str, Any], list[bytes]]:
    """Numbers and dates as their raw buffer; anything else as text: the UTF-8 bytes of every value concatenated,
    their int64 offsets and a missing-value mask. No pickle, and memory in proportion to the text itself (fixed-
    width unicode would pad every value to the longest one: 20,000 rows with one 100,000-character value = 8 GB)."""
    array = np.ascontiguousarray(array)
    if array.dtype.kind in NUMERIC_KINDS:
        return {"dtype": array.dtype.str, "shape": list(array.shape)}, [array.tobytes()]
    flat = array.reshape(-1)
    import pandas as pd

    missing = np.asarray(pd.isna(flat), dtype=bool).reshape(-1)
    encoded = [b"" if gone else str(value).encode("utf-8", "surrogatepass") for value, gone in zip(flat, missing)]
    offsets = np.zeros(len(encoded) + 1, dtype="<i8")
    np.cumsum(np.fromiter(map(len, encoded), dtype="<i8", count=len(encoded)), out=offsets[1:])
    return {"shape": list(array.shape), "text": True}, [offsets.tobytes(), b"".join(encoded), missing.tobytes()]


def buffer_count(meta: dict[str, Any]) -> int:
    """How many buffers encode_array wrote for this array."""
    return 3 if meta.get("text") else 1


def decode_array(meta: dict[str, Any], buffers: list[bytes]) -> np.ndarray:
    """The array encode_array wrote; ValueError when the buffers do not fit its description."""
    shape = [int(n) for n in meta["shape"]]
    count = int(np.prod(shape, dtype=np.int64))
    if not meta.get("text"):
        dtype = np.dtype(meta["dtype"])
        if dtype.kind not in NUMERIC_KINDS:
            raise ValueError(f"an array of dtype {dtype} cannot travel as a raw buffer")
        return np.frombuffer(buffers[0], dtype=dtype).reshape(shape)
    offsets, data = np.frombuffer(buffers[0], dtype="<i8"), buffers[1]
    missing = np.frombuffer(buffers[2], dtype=bool)
    if len(offsets) != count + 1 or len(missing) != count or offsets[0] != 0 or offsets[-1] != len(data) \
            or (np.diff(offsets) < 0).any():
        raise ValueError("a text array's offsets do not fit its data")
    values = np.empty(count, dtype=object)
    view = memoryview(data)
    for i in range(count):
        values[i] = None if missing[i] else str(view[offsets[i]:offsets[i + 1]], "utf-8", "surrogatepass")
    return values.reshape(shape)


def encode_frame(frame: Any) -> tuple[list[dict[str, Any]], list[bytes]]:
    """A pandas frame as column metadata and buffers (buffer_count of each column's)."""
    columns, buffers = [], []
    for name in frame.columns:
        meta, parts = encode_array(frame[name].to_numpy())
        columns.append({"name": str(name), **meta})
        buffers += parts
    return columns, buffers


def decode_frame(columns: list[dict[str, Any]], buffers: list[bytes]) -> Any:
    import pandas as pd

    data, at = {}, 0
    for meta in columns:
        used = buffer_count(meta)
        data[meta["name"]] = decode_array(meta, buffers[at:at + used])
        at += used
    return pd.DataFrame(data)


# --- after loading: the arrays tree models index with -----------------------------------------------------------
# A skops file may hold only trusted classes and still lie inside them: tree nodes whose child or feature indices
# point outside their arrays make scikit-learn's compiled predict read (and crash on) memory at offsets the file
# chooses. Every such index is checked before the model is handed out, in the platform and in every worker.
def tree_findings(estimator: Any) -> list[str]:
    """Out-of-range indices of every tree inside the estimator (pipelines and ensembles are walked)."""
    findings: list[str] = []
    for owner, tree in _trees(estimator, set()):
        findings += _tree_problems(owner, tree)
    return findings


def _trees(obj: Any, seen: set[int]) -> list[tuple[Any, Any]]:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray)) or obj is None:
        return []
    seen.add(id(obj))
    if isinstance(obj, (TreePredictor, Tree)):
        return [(None, obj)]
    children = (list(obj.values()) if isinstance(obj, dict) else list(obj) if isinstance(obj, (list, tuple))
                else list(vars(obj).values()) if hasattr(obj, "__dict__") else [])
    found = []
    for child in children:
        # the nearest estimator holding the tree owns it (lists of trees are not owners)
        found += [(owner if owner is not None or not hasattr(obj, "__dict__") else obj, tree)
                  for owner, tree in _trees(child, seen)]
    return found


def _tree_problems(owner: Any, tree: Any) -> list[str]:
    from sklearn.tree._tree import Tree

    name = type(owner).__name__ if owner is not None else "a tree"
    n_features = getattr(owner, "n_features_in_", None)
    if isinstance(tree, Tree):
        count, left, right, feature = tree.node_count, tree.children_left, tree.children_right, tree.feature
        leaf = left == -1
        n_features = tree.n_features
    else:
        nodes = tree.nodes
        count, left, right, feature = len(nodes), nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), \
            nodes["feature_idx"]
        leaf = nodes["is_leaf"] == 1
        categorical = (nodes["is_categorical"] == 1) & ~leaf
        if categorical.any() and (nodes["bitset_idx"][categorical] >= len(tree.raw_left_cat_bitsets)).any():
            return [f"{name}: a tree's categorical split points outside its category bitsets"]
    index = np.arange(count)
    inner = ~leaf
    # Children come after their parent (trees are stored in growing order), which also rules out cycles.
    bad_children = inner & ((left <= index) | (right <= index) | (left >= count) | (right >= count))
    bad_feature = inner & ((feature < 0) | (feature >= (n_features if n_features is not None else np.inf)))
    problems = []
    if bad_children.any():
        problems.append(f"{name}: {int(bad_children.sum())} tree node(s) point at children outside the tree")
    if bad_feature.any():
        problems.append(f"{name}: {int(bad_feature.sum())} tree node(s) split on a feature the model does not have")
    return problems


# --- the worker ------------------------------------------------------------------------------------------------
def installed_versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# --- what a model file's names are, where the model loads ------------------------------------------------------
# The security scan trusts classes only, never functions, and must judge a name where it will be loaded: a class
# of one scikit-learn may be missing, or something else, in another. Only names already on an allow-list (the
# platform's, skops' defaults, the spec's) are resolved, never a name read from a model file.
SKOPS_DEFAULT_LISTS = (
    "PRIMITIVE_TYPE_NAMES", "CONTAINER_TYPE_NAMES", "SKLEARN_ESTIMATOR_TYPE_NAMES", "SKLEARN_INTERNAL_TYPE_NAMES",
    "NUMPY_DTYPE_TYPE_NAMES", "NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES", "NUMPY_UFUNC_TYPE_NAMES",
    "SCIPY_UFUNC_TYPE_NAMES",
)


def skops_default_names() -> list[str]:
    """The names this skops trusts by default (skops/io/_trusted_types.py); none when it moved its lists, so that
    the scan fails closed."""
    try:
        from skops.io import _trusted_types
    except ImportError:
        return []
    return sorted({name for attr in SKOPS_DEFAULT_LISTS for name in getattr(_trusted_types, attr, [])})


def classify_names(names: list[str]) -> dict[str, str]:
    """Each name as 'class', the type of what else it is ('function', 'ufunc', ...) or 'unresolved: why', found as skops
    finds it (module, then one attribute). Imports the modules: call it only with allow-listed names."""
    import importlib

    kinds = {}
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # noqa: BLE001 - import and attribute errors alike mean the name is wrong here
            kinds[name] = f"unresolved: {type(exc).__name__}: {exc}"
            continue
        kinds[name] = "class" if isinstance(found, type) else type(found).__name__
    return kinds


def trust_report(names: list[str]) -> dict[str, dict[str, str]]:
    """skops' default names and the given allow-list names, classified in this process."""
    import importlib

    try:  # scikit-learn < 1.6 registers its compiled losses as a top-level module `_loss` too, named so in files
        importlib.import_module("sklearn._loss._loss")
    except ImportError:
        pass
    return {"defaults": classify_names(skops_default_names()), "names": classify_names(names)}


class Refused(Exception):
    """A request the worker will not carry out; its text goes back to the platform."""


class Worker:
    def __init__(self) -> None:
        self.model: Any = None
        self.predict_fn = "predict"

    def hello(self, header: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        # The names (never the values) of the variables it was started with: the platform checks it passed no more
        # than tasks.environments.child_environment allows.
        return {"versions": installed_versions(), "pid": os.getpid(), "environment_keys": sorted(os.environ)}, []

    def load(self, header: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Load the scanned bytes with skops, trusting only the types the platform's scan approved."""
        import skops.io

        data = buffers[0]
        if hashlib.sha256(data).hexdigest() != header["sha256"]:
            raise Refused("the model bytes received are not the ones the security scan passed (sha256 differs)")
        estimator = skops.io.loads(data, trusted=list(header["trusted_types"]))
        findings = tree_findings(estimator)
        if findings:
            raise Refused(f"the model file's trees are malformed: {'; '.join(findings)}")
        if not callable(getattr(estimator, header["predict_fn"], None)):
            raise Refused(f"{type(estimator).__name__} has no {header['predict_fn']}()")
        self.model, self.predict_fn = estimator, header["predict_fn"]
        return {"versions": installed_versions(), "estimator": type(estimator).__name__}, []

    def predict(self, header: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        if self.model is None:
            raise Refused("no model is loaded in this worker")
        import time

        frame = decode_frame(header["columns"], buffers)
        started = time.perf_counter()
        output = np.asarray(getattr(self.model, self.predict_fn)(frame), dtype=np.float64)
        spent = time.perf_counter() - started  # the model alone, as in-process scoring in this environment
        meta, out = encode_array(output)
        return {"output": meta, "model_seconds": spent}, out

    def train(self, header: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Fit through the spec's entry point in this environment and answer the skops bytes of the result, the
        types skops needs trusted to read them, and the output on the example rows (the signature's)."""
        import importlib

        import pandas as pd
        import skops.io

        sys.path.insert(0, header["code_path"])  # the project's reviewed code, for this one-shot training worker
        module, _, name = header["entry_point"].partition(":")
        trainer = getattr(importlib.import_module(module), name)
        used = buffer_count(header["target"])  # the target's buffers come last
        features = decode_frame(header["columns"], buffers[:-used])
        target = pd.Series(decode_array(header["target"], buffers[-used:]), name=header["target_name"])
        trained = trainer(features, target, header["params"])
        if not callable(getattr(trained, header["predict_fn"], None)):
            raise Refused(f"{header['entry_point']} returned {type(trained).__name__}, which has no "
                          f"{header['predict_fn']}()")
        data = skops.io.dumps(trained)
        example = features.head(int(header["example_rows"]))
        meta, out = encode_array(np.asarray(getattr(trained, header["predict_fn"])(example), dtype=np.float64))
        return ({"trusted_types": skops.io.get_untrusted_types(data=data), "output": meta,
                 "versions": installed_versions()}, [data, *out])


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    worker = Worker()
    while True:
        message = read_message(requests)
        if message is None:  # the platform closed the pipe (or died): nothing is left to answer
            return
        header, buffers = message
        handler = getattr(worker, str(header.get("op")), None) if header.get("op") in (
            "hello", "load", "predict", "train") else None
        try:
            if handler is None:
                raise Refused(f"unknown request {header.get('op')!r}")
            answer, out = handler(header, buffers)
            write_message(answers, {"ok": True, **answer}, out)
        except Exception as exc:  # noqa: BLE001 - every failure is answered; the platform decides what it means
            write_message(answers, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                    "refused": isinstance(exc, Refused)})


def main() -> None:
    # Answers go on a private copy of stdout; fd 1 becomes stderr, so a library printing cannot corrupt them.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if sys.argv[1:] == ["--versions"]:  # the environment's check after a build: everything the worker needs imports
        import importlib

        for module in ("pandas", "skops.io", "sklearn"):
            importlib.import_module(module)
        answers.write(json.dumps(installed_versions()).encode())
    elif sys.argv[1:] == ["--trust-report"]:  # allow-list names on stdin (JSON list), their kinds here
        answers.write(json.dumps(trust_report(json.loads(sys.stdin.read()))).encode())
    else:
        serve(sys.stdin.buffer, answers)
    answers.flush()


if __name__ == "__main__":
    main()
