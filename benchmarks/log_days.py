"""A one-day window read out of a year of prediction logs: the day-partitioned layout against the layout from
before (one Parquet file per scored batch), the same rows in both.

Synthetic rows (the layout is under test, not a model): a year of weekly scored batches, ROWS_PER_HOUR rows an
hour with ten feature columns. The old layout is written as log_predictions wrote it before partitioning (one file
under `version=<v>/`, indexed in the store), the new one by log_predictions itself. Each window read is the
platform's own `logged_predictions`, best of three.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.catalog_scale import timed
from modelops.platform import Platform

ROWS_PER_HOUR = int(os.environ.get("LOG_ROWS_PER_HOUR", "300"))
WEEKS = 52
TARGET_RATIO = 2.0  # the partitioned read must be at least this much faster


def week_of_rows(week: int, rng: np.random.Generator) -> pd.DataFrame:
    times = pd.date_range(datetime(2025, 1, 6) + timedelta(weeks=week), periods=7 * 24 * ROWS_PER_HOUR,
                          freq=pd.Timedelta(hours=1) / ROWS_PER_HOUR)
    frame = pd.DataFrame({"prediction_id": [f"w{week}-{i}" for i in range(len(times))], "event_time": times,
                          "scored_at": times[-1] + pd.Timedelta(hours=1),
                          "prediction": rng.integers(0, 2, len(times)), "score": rng.random(len(times)),
                          "latency_ms": rng.random(len(times))})
    for column in range(10):
        frame[f"x{column}"] = rng.normal(size=len(times))
    return frame


def log_as_before(platform: Platform, model: str, week: int, log: pd.DataFrame) -> None:
    """What log_predictions did before partitioning: the whole batch in one file, its path in the index."""
    from modelops.store.records import utcnow
    from modelops.store.schema import PredictionBatch
    from tasks.prediction_log import write_parquet_atomically

    batch_id = f"week-{week}"
    log = log.assign(model=model, version="1", role="champion", batch_id=batch_id)
    path = platform.settings.prediction_log_dir / model / "version=1" / f"{batch_id}.parquet"
    write_parquet_atomically(log, path)
    platform.store.record_prediction_batch(PredictionBatch(
        id=batch_id, model=model, version="1", role="champion", path=str(path), source=batch_id, rows=len(log),
        first_event_at=log["event_time"].min().tz_localize("UTC").to_pydatetime(),
        last_event_at=log["event_time"].max().tz_localize("UTC").to_pydatetime(), scored_at=utcnow()))


def main() -> int:
    os.environ["MODELOPS_HOME"] = str(Path(tempfile.mkdtemp(prefix="modelops-logs-")) / "state")
    from modelops.platform import get_platform
    from tasks.prediction_log import log_predictions, logged_predictions

    platform = get_platform()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for week in range(WEEKS):
        log = week_of_rows(week, rng)
        log_as_before(platform, "old-layout", week, log)
        log_predictions(platform, "partitioned", "1", "champion", log, f"week-{week}", f"week-{week}")
    rows = WEEKS * 7 * 24 * ROWS_PER_HOUR
    print(f"wrote a year of logs twice ({WEEKS} weekly batches, {rows:,} rows each layout) in "
          f"{time.perf_counter() - started:.0f} s")
    start = datetime(2025, 7, 16, tzinfo=timezone.utc)
    window = (start, start + timedelta(days=1))
    old_rows = len(logged_predictions(platform, "old-layout", "1", *window))
    new_rows = len(logged_predictions(platform, "partitioned", "1", *window))
    assert old_rows == new_rows == 24 * ROWS_PER_HOUR, (old_rows, new_rows)
    old = timed(lambda: logged_predictions(platform, "old-layout", "1", *window))
    new = timed(lambda: logged_predictions(platform, "partitioned", "1", *window))
    print(f"one-day window ({new_rows:,} rows) out of a year: one file per batch {old * 1000:.0f} ms, "
          f"partitioned by day {new * 1000:.0f} ms = {old / new:.1f}x faster")
    if old / new < TARGET_RATIO:
        print(f"targets missed: partitioned read less than {TARGET_RATIO}x faster")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
