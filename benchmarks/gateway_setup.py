"""What the online-scoring benchmark needs before any server starts, made in a process of its own.

`python -m benchmarks.gateway_setup HOME WORKDIR ROWS` onboards flight-delay into the state directory HOME
(register -> validate -> approve -> deploy, ~30-60 s) and writes into WORKDIR:
- rows.json: the champion's version, its signature columns, the spec's id column and decision threshold, and ROWS
  real flights that came after its training window (the traffic it would meet), as JSON-ready records;
- mlflow-model/: the same estimator saved for `mlflow models serve` (see save_for_mlflow_serve).

A process of its own because the flows start a temporary Prefect server that lives as long as the process that ran
them: left in the benchmark's process, it would take CPU from the servers being measured.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson

MODEL = "flight-delay"
ROWS_FILE = "rows.json"
MLFLOW_MODEL_DIR = "mlflow-model"
# Traffic comes from the rest of 2013 after the training window: enough real flights for a 5-minute soak at
# 200 requests/s with one flight (and one id) per request.
TRAFFIC_END = date(2014, 1, 1)


def traffic_records(frame: Any, columns: list[str], id_column: str, count: int) -> list[dict[str, Any]]:
    """The first `count` flights with every feature present, as records of Python scalars (what json.dumps takes).

    Rows with a missing feature are left out: the benchmark measures speed, and a 1-row request whose only value of
    a column is null is read differently by each server (the gateway's own tests cover missing values)."""
    complete = frame.dropna(subset=columns).head(count)
    if len(complete) < count:
        raise SystemExit(f"only {len(complete)} complete {MODEL} rows before {TRAFFIC_END}, {count} asked for: "
                         "ask for fewer (a shorter soak or a lower rate)")
    names = [id_column, *columns]
    values = [complete[name].tolist() for name in names]  # .tolist() gives Python int/float/str, not numpy scalars
    return [dict(zip(names, row)) for row in zip(*values)]


def save_for_mlflow_serve(estimator: Any, sample: Any, predict_fn: str, path: Path) -> None:
    """The champion's estimator as an MLflow model that `mlflow models serve` can load.

    The registered file is skops, which MLflow's pyfunc loader refuses without trusted types; this baseline copy is
    cloudpickle instead. It is the object the platform's scanned loader just produced from the pinned champion, so
    the only pickle ever loaded from it is our own; the server that loads it is the only process given
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true (benchmarks/gateway.py)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(sample, getattr(estimator, predict_fn)(sample))
    mlflow.sklearn.save_model(estimator, str(path), serialization_format="cloudpickle", signature=signature,
                              pyfunc_predict_fn=predict_fn, pip_requirements=[])


def prepare(workdir: Path, count: int) -> None:
    from modelops.demo import onboard
    from modelops.platform import get_platform
    from modelops.spec import Window, load_spec
    from tasks.data import load_window
    from tasks.integrity import load_verified_model

    version = onboard(MODEL)
    platform = get_platform()
    spec = load_spec(MODEL)
    verified = load_verified_model(platform, spec, version, "benchmark")
    columns = [name for name, _ in verified.columns]
    frame = load_window(spec, Window(start=spec.training.window.end, end=TRAFFIC_END))
    rows = traffic_records(frame, columns, spec.data.id_column, count)
    sample = frame.dropna(subset=columns).head(200)[columns]
    save_for_mlflow_serve(verified.model.estimator, sample, verified.model.predict_fn, workdir / MLFLOW_MODEL_DIR)
    description = {"model": MODEL, "version": version, "columns": verified.columns, "id_column": spec.data.id_column,
                   "threshold": spec.deploy.decision_threshold, "rows": rows}
    (workdir / ROWS_FILE).write_bytes(orjson.dumps(description))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.gateway_setup HOME WORKDIR ROWS", file=sys.stderr)
        return 2
    os.environ["MODELOPS_HOME"] = argv[0]
    os.environ.pop("PREFECT_API_URL", None)  # the flows run on a temporary server of this process, not a stack's
    from modelops.settings import configure_environment

    configure_environment()
    workdir = Path(argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
