"""The prediction log (Parquet, indexed in the governance store) and arrived ground truth.

Layout: `<prediction_log_dir>/<model>/date=YYYY-MM-DD/<batch id>.parquet`, one file per scored batch and day of
its event times (a batch spanning days is split across them). The index keeps one row per batch, with its first
and last event time, so a window read opens only the day files of its days: a year of logs costs a one-day read
one day's files. Logs written before (one file per batch, `<model>/version=<v>/<batch id>.parquet`) stay where
they are and are read whole, as they always were.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
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
    path = write_day_files(log, platform.settings.prediction_log_dir / model, batch_id)
    batch = PredictionBatch(id=batch_id, model=model, version=version, role=role, path=str(path), source=source,
                            rows=len(log), first_event_at=_utc(log["event_time"].min()),
                            last_event_at=_utc(log["event_time"].max()), scored_at=utcnow())
    platform.store.record_prediction_batch(batch)
    return batch


DAY_PARTITION = "date=*"  # the day folder of a partitioned batch's path in the index: `<model dir>/date=*/<id>.parquet`


def write_day_files(log: pd.DataFrame, model_dir: Path, batch_id: str) -> Path:
    """Write the batch's rows as one file per day of their event times, each atomically; day files a former
    logging of the same batch left on other days are removed after, so a reader sees old or new rows of a day,
    never none. Returns the batch's path pattern for the index."""
    if log["event_time"].isna().any():
        raise DataError(f"batch {batch_id}: {int(log['event_time'].isna().sum())} logged row(s) have no event time",
                        "score rows with a readable timestamp column (tasks.scoring.event_times)")
    days = log["event_time"].dt.strftime("%Y-%m-%d")
    written = set()
    for day, rows in log.groupby(days, sort=True):
        target = model_dir / f"date={day}" / f"{batch_id}.parquet"
        write_parquet_atomically(rows.reset_index(drop=True), target)
        written.add(target)
    for stale in set(model_dir.glob(f"{DAY_PARTITION}/{batch_id}.parquet")) - written:
        stale.unlink(missing_ok=True)
    return model_dir / DAY_PARTITION / f"{batch_id}.parquet"


def batch_files(batch: PredictionBatch, start: datetime | None = None, end: datetime | None = None) -> list[Path]:
    """The files holding the batch's rows with event_time in [start, end): the day files of the window's days
    (only those that exist: a batch need not have rows every day between its first and last), or the batch's one
    file in the layout from before partitioning. Nothing is listed: the days come from the index."""
    if not batch.path:  # a failed batch: nothing was logged
        return []
    path = Path(batch.path)
    if path.parent.name != DAY_PARTITION:
        return [path] if path.is_file() else []
    first = as_utc(batch.first_event_at) if start is None else max(as_utc(batch.first_event_at), as_utc(start))
    # [start, end): an end at midnight takes nothing of that day
    last = (as_utc(batch.last_event_at) if end is None
            else min(as_utc(batch.last_event_at), as_utc(end) - timedelta(microseconds=1)))
    days = [first.date() + timedelta(days=n) for n in range((last.date() - first.date()).days + 1)]
    files = [path.parent.parent / f"date={day:%Y-%m-%d}" / path.name for day in days]
    return [file for file in files if file.is_file()]


def read_batch(batch: PredictionBatch) -> pd.DataFrame:
    """Every logged row of one batch, whichever layout it was written in."""
    frames = [pd.read_parquet(file) for file in batch_files(batch)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LOG_COLUMNS)


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
    frames = [pd.read_parquet(file) for b in batches for file in batch_files(b, start, end)]
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
