"""The prediction log (Parquet per scored batch, indexed in the governance store) and arrived ground truth."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.errors import DataError
from modelops.files import replace_atomically
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import as_utc, utcnow
from modelops.store.schema import GroundTruthBatch, PredictionBatch
from tasks import as_task
from tasks.data import data_hash
from tasks.schema import required_ids
from tasks.scoring import naive_utc

LOG_COLUMNS = ["prediction_id", "event_time", "scored_at", "model", "version", "role", "batch_id", "prediction",
               "score", "latency_ms"]


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Readers see the old file or the new one, never half of one."""
    replace_atomically(path, lambda handle: frame.to_parquet(handle, index=False))


def batch_id_for(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def log_predictions(platform: Platform, model: str, version: str, role: str, log: pd.DataFrame,
                    source: str, source_digest: str) -> PredictionBatch:
    """Store one scored batch, from batch scoring or the online gateway's spool (serving.prediction_sink) alike.

    The batch id comes from (model, version, role, source_digest): logging the same input again (the same file
    scored again, a spool segment flushed again after a crash) replaces its Parquet file and its index record
    (the store merges on the id), never duplicates them."""
    batch_id = batch_id_for(model, version, role, source_digest)
    # One time unit in every file, whichever path scored the rows (pandas 2 stamps Timestamp.now() in microseconds).
    log = log.astype({"event_time": "datetime64[ns]", "scored_at": "datetime64[ns]"}).assign(
        model=model, version=version, role=role, batch_id=batch_id)
    path = platform.settings.prediction_log_dir / model / f"version={version}" / f"{batch_id}.parquet"
    write_parquet_atomically(log, path)
    batch = PredictionBatch(id=batch_id, model=model, version=version, role=role, path=str(path), source=source,
                            rows=len(log), first_event_at=_utc(log["event_time"].min()),
                            last_event_at=_utc(log["event_time"].max()), scored_at=utcnow())
    platform.store.record_prediction_batch(batch)
    return batch


def log_failed_batch(platform: Platform, spec: LifecycleSpec, version: str, role: str, frame: pd.DataFrame,
                     source: str, source_digest: str, error: str) -> PredictionBatch:
    """A batch that could not be scored counts against the error rate of its window: the span of the event times
    that can be read. With none readable (the very reason it may have failed), the time it was refused is the only
    time known of it; the record says failed and why, so nothing is passed off as scored traffic of today."""
    stamps = (naive_utc(frame[spec.data.timestamp_column]).dropna()
              if spec.data.timestamp_column in frame.columns else pd.Series(dtype="datetime64[ns]"))
    now = utcnow()
    batch = PredictionBatch(id=batch_id_for(spec.name, version, role, source_digest), model=spec.name, version=version,
                            role=role, path="", source=source, rows=len(frame),
                            first_event_at=_utc(stamps.min()) if len(stamps) else now,
                            last_event_at=_utc(stamps.max()) if len(stamps) else now, scored_at=now,
                            status="failed", error=error[:2000])
    platform.store.record_prediction_batch(batch)
    return batch


def _naive_utc(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(as_utc(value)).tz_localize(None)


def _utc(value: pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def logged_predictions(platform: Platform, model: str, version: str | None, start: datetime | None,
                       end: datetime | None) -> pd.DataFrame:
    """Logged rows with event_time in [start, end) (naive UTC timestamps), optionally of one version."""
    batches = platform.store.prediction_batches(model, version, start, end)
    frames = [pd.read_parquet(b.path) for b in batches if Path(b.path).is_file()]
    if not frames:
        return pd.DataFrame(columns=LOG_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame["event_time"] >= _naive_utc(start)
    if end is not None:
        mask &= frame["event_time"] < _naive_utc(end)
    # The same request scored twice by the same version counts once: the latest scoring is the one that stands.
    return (frame.loc[mask].sort_values("scored_at", kind="stable")
            .drop_duplicates(subset=["prediction_id", "version"], keep="last").reset_index(drop=True))


def record_ground_truth(platform: Platform, spec: LifecycleSpec, labels: pd.DataFrame, source: str) -> GroundTruthBatch:
    """Store labels that arrived for earlier predictions: columns <id_column> and <target> of the spec.

    Every label needs its prediction's id. A row without a label is dropped (not arrived yet); the same id twice
    with the same label counts once, with different labels the batch is refused: which one is true is not ours to
    pick. A later batch may correct a label: the latest stands.
    """
    needed = [spec.data.id_column, spec.data.target]
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise DataError(f"{source}: ground truth lacks columns {missing}",
                        f"give one row per prediction with columns {needed}")
    frame = pd.DataFrame({"prediction_id": required_ids(labels, spec.data.id_column, source).to_numpy(),
                          "label": labels[spec.data.target].to_numpy()}).dropna().drop_duplicates()
    _refuse_conflicting_labels(frame, spec.data.id_column, source)
    frame["received_at"] = pd.Timestamp(utcnow()).tz_localize(None)
    digest = batch_id_for(spec.name, "labels", data_hash(frame[["prediction_id", "label"]]))
    path = platform.settings.labels_dir / spec.name / f"{digest}.parquet"
    write_parquet_atomically(frame, path)
    batch = GroundTruthBatch(id=digest, model=spec.name, path=str(path), rows=len(frame), received_at=utcnow())
    platform.store.record_ground_truth_batch(batch)
    return batch


def _refuse_conflicting_labels(frame: pd.DataFrame, column: str, source: str) -> None:
    repeated = frame["prediction_id"].duplicated(keep=False).to_numpy()  # rows are distinct: repeats disagree
    if repeated.any():
        first = frame["prediction_id"].iloc[int(np.flatnonzero(repeated)[0])]
        labels = frame.loc[frame["prediction_id"] == first, "label"].tolist()
        raise DataError(f"{source}: {frame.loc[repeated, 'prediction_id'].nunique()} id(s) in {column!r} have "
                        f"conflicting labels; {first!r} is labelled {labels}",
                        f"send one label per {column!r}; a correction goes in a later batch, where it replaces the "
                        "earlier label")


def ground_truth(platform: Platform, model: str) -> pd.DataFrame:
    frames = [pd.read_parquet(b.path) for b in platform.store.ground_truth_batches(model) if Path(b.path).is_file()]
    if not frames:
        return pd.DataFrame(columns=["prediction_id", "label", "received_at"])
    return pd.concat(frames, ignore_index=True).drop_duplicates("prediction_id", keep="last")


def labelled_predictions(platform: Platform, model: str, version: str | None, start: datetime | None,
                         end: datetime | None) -> pd.DataFrame:
    """Logged predictions joined to their ground truth by prediction id, with the label delay."""
    logged = logged_predictions(platform, model, version, start, end)
    joined = logged.merge(ground_truth(platform, model), on="prediction_id", how="inner")
    if not joined.empty:
        joined["label_delay_hours"] = (joined["received_at"] - joined["scored_at"]).dt.total_seconds() / 3600
    return joined


record_ground_truth_task = as_task(record_ground_truth)
log_failed_batch_task = as_task(log_failed_batch)
