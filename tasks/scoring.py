"""Batch scoring: read a file, check it against the signature, predict, write outputs and the prediction log."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelops.errors import DataError
from modelops.settings import Settings
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.schema import conform_to_signature, offenders, required_column, required_ids


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


def decide(scores: np.ndarray, task: str, decision_threshold: float) -> np.ndarray:
    """What is answered: the class for a classifier (score at or above the threshold is positive), the value for a
    regressor. Batch, online and streaming scoring decide alike."""
    return (scores >= decision_threshold).astype("int64") if task == "classification" else scores


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, the prediction log's convention: aware values are converted, naive ones are
    taken to be UTC already. NaT where a value is missing or cannot be read without a guess (see naive_utc_value);
    numbers are not read at all: seconds, milliseconds or nanoseconds since 1970 would be a guess."""
    if ptypes.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True).dt.tz_localize(None)
    if ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    read = [naive_utc_value(value) for value in values.to_numpy(dtype=object)]
    return pd.Series(pd.to_datetime(read, errors="coerce"), index=values.index)  # out of range -> NaT


def naive_utc_value(value: object) -> datetime | None:
    """One value as a naive UTC datetime, or None. Text is read as ISO 8601 by Python, value by value: dateutil
    would give '05:00' today's date and read 03/04/2013 either way round, and pandas' vectorised ISO 8601 parser
    lends an offset-less value the offset of an earlier one."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, dt_time.min)
    if not isinstance(value, datetime) or pd.isna(value):
        return None
    try:
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
    except OverflowError:  # 0001-01-01 with a positive offset has no UTC time
        return None


def event_times(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """When each row's event happened, as naive UTC. Every row needs a readable one: defaulting it to the scoring
    time would put old traffic into today's monitoring window and leave its own window without it."""
    values = required_column(frame, column, "data.timestamp_column", source)
    times = naive_utc(values)
    bad = times.isna().to_numpy()
    if bad.any():
        raise DataError(f"{source}: timestamp column {column!r} has no ISO 8601 timestamp in {offenders(values, bad)}",
                        f"give every row its event time in {column!r} as ISO 8601 text, e.g. '2013-02-15 05:00:00' "
                        "(UTC) or '2013-02-15 00:00:00-05:00', or as datetimes; numbers are not read as times")
    return times


def batch_ids(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """The prediction ids of a batch: its id column as text.

    Rule: a row of a batch is one request, and ground truth finds its prediction by the id, so every row needs an
    id (never generated: a made-up id joins no label) and no two rows of one batch may share one (a label would
    join both, or the log would keep one of them at random). Such a batch is refused, naming the id and how often it
    occurs. The same id in a later batch is that request scored again: the latest scoring stands.
    """
    ids = required_ids(frame, column, source)
    values = frame[column]
    # Integers repeat exactly where their text does, and hash several times faster than it.
    repeated = (values if ptypes.is_integer_dtype(values.dtype) else ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        counts = ids[repeated].value_counts()
        first = ids.iloc[int(np.flatnonzero(repeated)[0])]
        rows = np.flatnonzero((ids == first).to_numpy())
        raise DataError(f"{source}: id column {column!r} repeats {len(counts)} id(s) over {int(repeated.sum())} of "
                        f"{len(ids)} rows; {first!r} occurs {len(rows)} times, at rows {rows[:5].tolist()} (0-based)",
                        f"give each row of a batch its own {column!r}; score a request again in a later batch")
    return ids


def _one_openmp_thread() -> None:
    """A scoring thread's OpenMP regions run on that thread alone (the setting is per thread): the pool's threads
    use the cores instead, each scoring its own slice (the model's native loops release the GIL). A team of
    threads woken per tree spins and waits on a busy machine: up to tenfold slower here."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


_POOL: ThreadPoolExecutor | None = None


def _scoring_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="modelops-score",
                                   initializer=_one_openmp_thread)
    return _POOL


def predict_in_chunks(pyfunc: Any, features: pd.DataFrame, task: str, chunk_rows: int) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """Scores, and for each row the latency (ms) of a `chunk_rows` micro-batch at the speed its rows were scored:
    the service's latency.

    A batch is scored in one slice per core, concurrently, not in micro-batches: a call into the model costs a
    fixed few milliseconds (column transformers, checks), which at 1,000 rows a call would double the time of a
    large batch. The latency is the slice's time pro-rated to `chunk_rows` rows, i.e. that fixed cost is spread
    rather than paid per micro-batch (batches of `chunk_rows` rows or fewer are timed as they are)."""
    scores = np.empty(len(features), dtype="float64")
    latency = np.empty(len(features), dtype="float64")
    pool = _scoring_pool()
    slice_rows = max(chunk_rows, -(-len(features) // (pool._max_workers or 1)))

    def score_one(start: int) -> None:
        part = features.iloc[start:start + slice_rows]
        began = time.perf_counter()
        scores[start:start + len(part)] = predict_scores(pyfunc, part, task)
        elapsed_ms = (time.perf_counter() - began) * 1000
        latency[start:start + len(part)] = elapsed_ms * min(chunk_rows, len(part)) / len(part)

    for done in [pool.submit(score_one, start) for start in range(0, len(features), slice_rows)]:
        done.result()  # re-raises a slice's error here
    return scores, latency


def score_frame(spec: LifecycleSpec, pyfunc: Any, columns: list[tuple[str, str]], frame: pd.DataFrame,
                source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (predictions for the caller, rows for the prediction log).

    Raises DataError (SchemaMismatchError for the model's inputs) for a batch that would log wrong data: see
    batch_ids, event_times and conform_to_signature. Each is checked before the model runs.
    """
    ids = batch_ids(frame, spec.data.id_column, source)
    event_time = event_times(frame, spec.data.timestamp_column, source)
    features = conform_to_signature(frame, columns, source)
    scores, latency_ms = predict_in_chunks(pyfunc, features, spec.task, spec.deploy.chunk_rows)
    prediction = decide(scores, spec.task, spec.deploy.decision_threshold)
    scored_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    outputs = pd.DataFrame({"prediction_id": ids.to_numpy(), "prediction": prediction, "score": scores})
    log = pd.concat([
        pd.DataFrame({"prediction_id": ids.to_numpy(), "event_time": event_time.to_numpy(),
                      "scored_at": scored_at}),
        features.reset_index(drop=True),
        pd.DataFrame({"prediction": prediction, "score": scores, "latency_ms": latency_ms}),
    ], axis=1)
    return outputs, log


@dataclass(frozen=True)
class WorkerModel:
    """The version a Dask worker scores a chunk with: the model is not sent over the wire; the worker opens the
    version itself through the same checks as the flow (governed, not retired, scanned, pinned bytes), once per
    process, from the flow's settings."""

    settings: Settings
    model: str
    version: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return _opened_on_worker(self.settings, self.model, self.version).predict(frame)


@lru_cache(maxsize=8)
def _opened_on_worker(settings: Settings, model: str, version: str) -> Any:
    from modelops.platform import platform_for
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model

    return load_verified_model(platform_for(settings), load_spec(model), version, "scoring")


read_batch_task = as_task(read_batch)
score_frame_task = as_task(score_frame)
