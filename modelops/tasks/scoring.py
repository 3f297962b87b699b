"""Batch scoring: read a file, check it against the signature, predict, write outputs and the prediction log."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelops.errors import DataError
from modelops.spec import LifecycleSpec
from modelops.tasks import as_task
from modelops.tasks.schema import conform_to_signature


def read_batch(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"batch file {path} does not exist", "pass the path of a Parquet or CSV file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise DataError(f"batch file {path} has suffix {suffix!r}", "give a .parquet or .csv file")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many types for a corrupt file
        raise DataError(f"batch file {path} cannot be read: {exc}", "check that it is valid Parquet/CSV") from exc
    if frame.empty:
        raise DataError(f"batch file {path} has no rows", "score a file with at least one row")
    return frame


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def predict_scores(pyfunc: Any, features: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability for classifiers, the predicted value for regressors."""
    output = np.asarray(pyfunc.predict(features))
    if task == "classification" and output.ndim == 2:
        return output[:, -1].astype("float64")
    return output.reshape(len(features)).astype("float64")


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, the prediction log's convention: aware values are converted, naive ones are
    taken to be UTC already."""
    return pd.to_datetime(values, utc=True).dt.tz_localize(None)


def predict_in_chunks(pyfunc: Any, features: pd.DataFrame, task: str, chunk_rows: int) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """Scores, and for each row the latency (ms) of the micro-batch it was scored in: the service's latency."""
    scores = np.empty(len(features), dtype="float64")
    latency = np.empty(len(features), dtype="float64")
    for start in range(0, len(features), chunk_rows):
        chunk = features.iloc[start:start + chunk_rows]
        began = time.perf_counter()
        scores[start:start + len(chunk)] = predict_scores(pyfunc, chunk, task)
        latency[start:start + len(chunk)] = (time.perf_counter() - began) * 1000
    return scores, latency


def score_frame(spec: LifecycleSpec, pyfunc: Any, columns: list[tuple[str, str]], frame: pd.DataFrame,
                source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (predictions for the caller, rows for the prediction log)."""
    features = conform_to_signature(frame, columns, source)
    scores, latency_ms = predict_in_chunks(pyfunc, features, spec.task, spec.deploy.chunk_rows)
    if spec.task == "classification":
        prediction = (scores >= spec.deploy.decision_threshold).astype("int64")
    else:
        prediction = scores
    ids = (frame[spec.data.id_column].astype(str) if spec.data.id_column in frame.columns
           else pd.Series([f"{source}#{i}" for i in range(len(frame))], index=frame.index))
    scored_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    event_time = (naive_utc(frame[spec.data.timestamp_column]) if spec.data.timestamp_column in frame.columns
                  else pd.Series(scored_at, index=frame.index))
    outputs = pd.DataFrame({"prediction_id": ids.to_numpy(), "prediction": prediction, "score": scores})
    log = pd.concat([
        pd.DataFrame({"prediction_id": ids.to_numpy(), "event_time": pd.to_datetime(event_time).to_numpy(),
                      "scored_at": scored_at}),
        features.reset_index(drop=True),
        pd.DataFrame({"prediction": prediction, "score": scores, "latency_ms": latency_ms}),
    ], axis=1)
    return outputs, log


read_batch_task = as_task(read_batch)
score_frame_task = as_task(score_frame)
