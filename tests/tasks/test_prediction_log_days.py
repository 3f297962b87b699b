"""The prediction log is partitioned by model and day: a window read opens only the files of its days, a batch
spanning days is split across them, and logs written in the layout from before stay readable."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tasks.prediction_log import LOG_COLUMNS, batch_files, log_predictions, logged_predictions

MODEL = "days-model"


@pytest.fixture
def platform(state_home: Path) -> Any:
    from modelops.platform import get_platform

    return get_platform()


def _log(first: str, hours: int, prefix: str = "p") -> pd.DataFrame:
    """One row per hour from `first` (synthetic: the layout, not the model, is under test)."""
    times = pd.date_range(first, periods=hours, freq="h")
    return pd.DataFrame({"prediction_id": [f"{prefix}{i}" for i in range(hours)], "event_time": times,
                         "scored_at": pd.Timestamp("2025-06-01 12:00"), "prediction": np.arange(hours) % 2,
                         "score": np.linspace(0, 1, hours), "latency_ms": 1.0})


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _day_files(platform: Any) -> list[str]:
    return sorted(p.relative_to(platform.settings.prediction_log_dir / MODEL).as_posix()
                  for p in (platform.settings.prediction_log_dir / MODEL).rglob("*.parquet"))


def test_a_batch_spanning_three_days_is_one_file_per_day_and_reads_back_whole(platform: Any) -> None:
    batch = log_predictions(platform, MODEL, "1", "champion", _log("2025-03-01 20:00", 36), "three-days", "d1")

    assert _day_files(platform) == [f"date=2025-03-0{d}/{batch.id}.parquet" for d in (1, 2, 3)]
    read = logged_predictions(platform, MODEL, "1", None, None)
    assert sorted(read["prediction_id"]) == sorted(f"p{i}" for i in range(36))
    assert len(logged_predictions(platform, MODEL, "1", _utc("2025-03-02"), _utc("2025-03-03"))) == 24


def test_a_window_read_opens_only_the_files_of_its_days(platform: Any) -> None:
    """The batch's file of 3 March is replaced by garbage: reading 2 March still works, reading 3 March fails,
    so the first read provably never opened it."""
    batch = log_predictions(platform, MODEL, "1", "champion", _log("2025-03-01 20:00", 36), "three-days", "d1")
    (platform.settings.prediction_log_dir / MODEL / "date=2025-03-03" / f"{batch.id}.parquet").write_bytes(b"junk")

    day = logged_predictions(platform, MODEL, "1", _utc("2025-03-02"), _utc("2025-03-03"))
    assert sorted(day["prediction_id"]) == sorted(f"p{i}" for i in range(4, 28))
    assert [f.parent.name for f in batch_files(batch, _utc("2025-03-02"), _utc("2025-03-03"))] == ["date=2025-03-02"]
    with pytest.raises(Exception, match="(?i)parquet"):
        logged_predictions(platform, MODEL, "1", _utc("2025-03-03"), _utc("2025-03-04"))


def test_logging_a_batch_again_on_fewer_days_leaves_no_rows_of_the_first_logging(platform: Any) -> None:
    log_predictions(platform, MODEL, "1", "champion", _log("2025-03-01 20:00", 36), "again", "same-digest")
    batch = log_predictions(platform, MODEL, "1", "champion", _log("2025-03-02 00:00", 5, "q"), "again",
                            "same-digest")

    assert _day_files(platform) == [f"date=2025-03-02/{batch.id}.parquet"]
    assert sorted(logged_predictions(platform, MODEL, None, None, None)["prediction_id"]) == [f"q{i}" for i in range(5)]


def test_a_log_in_the_layout_from_before_partitioning_stays_readable_beside_new_ones(platform: Any) -> None:
    """A batch logged before (one file under version=<v>/, its whole path in the index) is read as it was."""
    from modelops.store.records import utcnow
    from modelops.store.schema import PredictionBatch
    from tasks.prediction_log import write_parquet_atomically

    old = _log("2025-02-27 12:00", 72, "old").assign(model=MODEL, version="1", role="champion", batch_id="old")
    path = platform.settings.prediction_log_dir / MODEL / "version=1" / "old.parquet"
    write_parquet_atomically(old, path)
    platform.store.record_prediction_batch(PredictionBatch(
        id="old", model=MODEL, version="1", role="champion", path=str(path), source="before", rows=len(old),
        first_event_at=_utc("2025-02-27 12:00"), last_event_at=_utc("2025-03-02 11:00"), scored_at=utcnow()))
    log_predictions(platform, MODEL, "1", "champion", _log("2025-03-01 00:00", 24, "new"), "after", "d2")

    first_of_march = logged_predictions(platform, MODEL, "1", _utc("2025-03-01"), _utc("2025-03-02"))
    assert sorted(first_of_march["prediction_id"]) == sorted([f"old{i}" for i in range(36, 60)]
                                                             + [f"new{i}" for i in range(24)])
    assert set(first_of_march.columns) == set(LOG_COLUMNS)
    assert len(logged_predictions(platform, MODEL, None, None, None)) == 72 + 24
