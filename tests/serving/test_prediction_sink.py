"""The gateway's prediction sink: what append acknowledged reaches the prediction log batch scoring writes, once,
through flushes, close, killed processes, torn writes and failing flushes. Real store and spool in a fresh state
directory per test; killed and concurrent workers are real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelops.errors import ModelOpsError
from modelops.platform import Platform
from modelops.spec import LifecycleSpec, Window, load_spec
from tasks.prediction_log import read_batch

# Child processes import this module: it must not import tests.conftest, which points MODELOPS_HOME elsewhere.
ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay"
ROLE = "champion"


def request(tag: str, first: int, rows: int) -> dict[str, list[Any]]:
    """A scored request of `rows` rows with ids <tag>-<n>, columns as the gateway appends them."""
    spec = load_spec(MODEL)
    columns: dict[str, list[Any]] = {"prediction_id": [f"{tag}-{n}" for n in range(first, first + rows)],
                                     "event_time": ["2013-02-16T06:00:00-05:00"] * rows,
                                     "scored_at": ["2013-02-16T11:00:01.250000"] * rows}
    columns |= {name: [float(n) for n in range(rows)] for name in spec.data.features.numerical}
    columns |= {name: ["UA"] * rows for name in spec.data.features.categorical}
    return columns | {"prediction": [1] * rows, "score": [0.75] * rows, "latency_ms": [4.5] * rows}


def spooled(platform: Platform) -> list[Path]:
    from serving.prediction_sink import spool_dir

    return sorted(spool_dir(platform).glob("*.spool"))


def spooled_by_one_sink(platform: Platform, *requests: dict[str, list[Any]]) -> tuple[Any, Path]:
    """A sink that appended `requests`, and the one spool segment they are in."""
    from serving.prediction_sink import PredictionSink

    sink = PredictionSink(platform, "w1")
    for columns in requests:
        sink.append(MODEL, "1", ROLE, columns)
    [segment] = spooled(platform)
    return sink, segment


def logged_ids(platform: Platform) -> list[str]:
    from tasks.prediction_log import logged_predictions

    return sorted(logged_predictions(platform, MODEL, "1", None, None)["prediction_id"])


def stored_rows(platform: Platform) -> tuple[int, int]:
    """(PredictionBatch records, rows in their Parquet files): duplicates show here, not in logged_predictions."""
    batches = platform.store.prediction_batches(MODEL)
    return len(batches), sum(len(read_batch(b)) for b in batches)


@pytest.fixture
def platform(state_home: Path) -> Platform:
    from modelops.platform import get_platform

    return get_platform()


# --- the log batch scoring writes ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec() -> LifecycleSpec:
    return load_spec(MODEL)


@pytest.fixture(scope="module")
def scorer(spec: LifecycleSpec) -> tuple[Any, list[tuple[str, str]]]:
    """A real flight-delay model and its signature as the catalog reads it back: (name, MLflow type)."""
    from mlflow.models import infer_signature

    from tasks.data import features_of, load_window

    frame = load_window(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 8)))
    model = spec.entry("trainer")(features_of(spec, frame), frame[spec.data.target], {"max_iter": 20})
    return model, [(col.name, col.type.name) for col in infer_signature(features_of(spec, frame)).inputs.inputs]


def scored_day(spec: LifecycleSpec, scorer: tuple[Any, list[tuple[str, str]]], day: date) -> pd.DataFrame:
    """Prediction log rows of a day of flights, scored as batch scoring scores them."""
    from tasks.data import load_window
    from tasks.scoring import score_frame

    frame = load_window(spec, Window(start=day, end=date.fromordinal(day.toordinal() + 1)))
    return score_frame(spec, scorer[0], scorer[1], frame.drop(columns=[spec.data.target]), f"{day}.parquet")[1]


def as_request(log: pd.DataFrame) -> dict[str, list[Any]]:
    """Log rows as the gateway appends them: event times as ISO text with the airport's offset, scored_at as
    datetimes, every other column as the Python values of its conformed column."""
    columns = {name: log[name].tolist() for name in log.columns}
    local = log["event_time"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    return columns | {"event_time": [stamp.isoformat() for stamp in local],
                      "scored_at": [stamp.to_pydatetime() for stamp in log["scored_at"]]}


def test_online_rows_are_logged_with_the_dtypes_of_batch_scoring_and_join_its_log(
        platform: Platform, spec: LifecycleSpec, scorer: tuple[Any, list[tuple[str, str]]]) -> None:
    from serving.prediction_sink import PredictionSink
    from tasks.prediction_log import log_predictions, logged_predictions

    batch_log = scored_day(spec, scorer, date(2013, 2, 15))
    log_predictions(platform, MODEL, "1", ROLE, batch_log, "2013-02-15.parquet", "digest-of-the-file")
    # No rain gauge reading all day: JSON holds only nulls for the column, which must still be logged as float64.
    online_log = scored_day(spec, scorer, date(2013, 2, 16)).assign(precip=float("nan"))
    sink = PredictionSink(platform, "w1")
    for start in range(0, len(online_log), 7):
        sink.append(MODEL, "1", ROLE, as_request(online_log.iloc[start:start + 7]))

    assert sink.flush() == len(online_log)
    files = {b.source: read_batch(b) for b in platform.store.prediction_batches(MODEL)}
    assert set(files) == {"2013-02-15.parquet", "online:w1"}
    online, batch = files["online:w1"], files["2013-02-15.parquet"]
    assert online.dtypes.to_dict() == batch.dtypes.to_dict()
    assert str(online["event_time"].dtype) == str(online["scored_at"].dtype) == "datetime64[ns]"
    times = {"event_time": "datetime64[ns]", "scored_at": "datetime64[ns]"}
    pd.testing.assert_frame_equal(online[list(online_log.columns)], online_log.astype(times))
    both = logged_predictions(platform, MODEL, "1", None, None)
    assert len(both) == len(batch_log) + len(online_log)
    assert both.dtypes.to_dict() == batch.dtypes.to_dict()


# --- durability ---------------------------------------------------------------------------------------------------

def test_close_logs_everything_appended(platform: Platform) -> None:
    from serving.prediction_sink import PredictionSink, spool_dir

    sink = PredictionSink(platform, "w1", flush_seconds=3600)  # the flusher would not get round to it
    sink.start()
    sink.append(MODEL, "1", ROLE, request("r", 0, 3))
    sink.append(MODEL, "1", ROLE, request("r", 3, 2))
    sink.close()

    assert logged_ids(platform) == [f"r-{n}" for n in range(5)]
    assert list(spool_dir(platform).iterdir()) == []
    with pytest.raises(ModelOpsError, match="is closed"):
        sink.append(MODEL, "1", ROLE, request("r", 5, 1))


def test_the_flusher_logs_once_flush_rows_are_spooled(platform: Platform) -> None:
    from serving.prediction_sink import PredictionSink
    from tests.conftest import wait_for

    sink = PredictionSink(platform, "w1", flush_rows=4, flush_seconds=3600)
    sink.start()
    sink.append(MODEL, "1", ROLE, request("r", 0, 4))
    try:
        assert wait_for(lambda: logged_ids(platform) == [f"r-{n}" for n in range(4)], interval=0.05)
    finally:
        sink.close()


KILLED_CHILD = """
import os, sys
from modelops.platform import get_platform
from serving.prediction_sink import PredictionSink
from tests.serving.test_prediction_sink import MODEL, ROLE, request

sink = PredictionSink(get_platform(), "doomed")
for n in range(int(sys.argv[1])):
    sink.append(MODEL, "1", ROLE, request("k", 3 * n, 3))
os.kill(os.getpid(), 9)  # no close, no flush: dead the moment the last append returned
"""


def test_a_killed_worker_loses_nothing_it_acknowledged(platform: Platform) -> None:
    from serving.prediction_sink import recover_spools

    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, "40"], cwd=ROOT, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert logged_ids(platform) == []

    assert recover_spools(platform) == 120
    assert logged_ids(platform) == sorted(f"k-{n}" for n in range(120))
    assert [b.source for b in platform.store.prediction_batches(MODEL)] == ["online:doomed"]
    assert spooled(platform) == []


def test_a_segment_flushed_again_replaces_its_rows(platform: Platform) -> None:
    from serving.prediction_sink import recover_spools

    sink, segment = spooled_by_one_sink(platform, request("r", 0, 4))
    content = segment.read_bytes()
    assert sink.flush() == 4
    segment.write_bytes(content)  # a crash after the log was written and before the segment was deleted

    assert recover_spools(platform) == 4
    assert stored_rows(platform) == (1, 4)
    assert len(list((platform.settings.prediction_log_dir / MODEL).rglob("*.parquet"))) == 1


def test_a_torn_last_line_is_skipped_and_the_rest_kept(platform: Platform) -> None:
    sink, segment = spooled_by_one_sink(platform, request("r", 0, 3), request("r", 3, 2))
    with segment.open("ab") as handle:  # what a process killed in the middle of a write leaves
        handle.write(b'["flight-delay","1","champion",{"prediction_id":["r-5"')

    assert sink.flush() == 5
    assert sink.torn_lines == 1
    assert logged_ids(platform) == [f"r-{n}" for n in range(5)]


def test_a_live_workers_spool_is_not_recovered_from_under_it(platform: Platform) -> None:
    from serving.prediction_sink import PredictionSink, recover_spools

    sink = PredictionSink(platform, "alive")
    sink.append(MODEL, "1", ROLE, request("r", 0, 4))

    assert recover_spools(platform) == 0  # its lock is held, even against another handle of this very process
    assert sink.flush() == 4
    assert stored_rows(platform) == (1, 4)


def test_a_failed_flush_keeps_the_rows_for_the_next_one(platform: Platform, caplog: pytest.LogCaptureFixture) -> None:
    from serving.prediction_sink import PredictionSink

    sink = PredictionSink(platform, "w1")
    sink.append(MODEL, "1", ROLE, request("secret", 0, 3))
    blocker = platform.settings.prediction_log_dir / MODEL
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the model's log folder belongs")
    with caplog.at_level("ERROR", logger="serving.prediction_sink"):
        assert sink.flush() == 0
    assert sink.pending_segments == 1
    assert "flush failed" in caplog.text and "secret" not in caplog.text  # the error, never the rows

    blocker.unlink()
    assert sink.flush() == 3
    assert sink.pending_segments == 0
    assert logged_ids(platform) == [f"secret-{n}" for n in range(3)]


def test_a_segment_that_can_never_be_logged_is_set_aside_whole(platform: Platform) -> None:
    from serving.prediction_sink import spool_dir

    unreadable = request("r", 2, 2) | {"event_time": ["yesterday", "2013-02-16T06:00:00"]}
    sink, segment = spooled_by_one_sink(platform, request("r", 0, 2), unreadable)
    content = segment.read_bytes()

    assert sink.flush() == 0
    assert sink.pending_segments == 0  # not retried for ever
    assert logged_ids(platform) == []
    [rejected] = spool_dir(platform).glob("*.rejected")
    assert rejected.read_bytes() == content


CONCURRENT_CHILD = """
import sys
from modelops.platform import get_platform
from serving.prediction_sink import PredictionSink
from tests.serving.test_prediction_sink import MODEL, ROLE, request

worker = sys.argv[1]
sink = PredictionSink(get_platform(), worker, flush_rows=50, flush_seconds=0.01)
sink.start()
print("ready", flush=True)
sys.stdin.readline()  # both processes start appending together
for n in range(300):
    sink.append(MODEL, "1", ROLE, request(worker, 2 * n, 2))
sink.close()
"""


def test_two_worker_processes_log_without_mixing_their_rows(platform: Platform) -> None:
    from serving.prediction_sink import recover_spools

    children = [subprocess.Popen([sys.executable, "-c", CONCURRENT_CHILD, worker], cwd=ROOT, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for worker in ("a", "b")]
    assert [child.stdout.readline().strip() for child in children] == ["ready", "ready"]  # type: ignore[union-attr]
    for child in children:
        child.stdin.write("go\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
    for child in children:
        child.communicate(timeout=120)
        assert child.returncode == 0
    recover_spools(platform)  # what a flush lost to the other process's hold on the store

    assert logged_ids(platform) == sorted(f"{w}-{n}" for w in "ab" for n in range(600))
    batches = platform.store.prediction_batches(MODEL)
    assert sum(b.rows for b in batches) == 1200
    for batch in batches:
        worker = batch.source.removeprefix("online:")
        assert set(read_batch(batch)["prediction_id"].str.split("-").str[0]) == {worker}



def test_a_planted_symlink_or_fifo_among_the_segments_does_not_stop_recovery(platform: Platform) -> None:
    """Recovery runs at every gateway start: what it cannot read is left alone, and real segments still flush."""
    import os

    from serving.prediction_sink import recover_spools, spool_dir

    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, "40"], cwd=ROOT, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    directory = spool_dir(platform)
    loop = directory / "w9.1.1.000001.spool"
    loop.symlink_to(loop)  # opening it fails with ELOOP
    os.mkfifo(directory / "w9.1.2.000001.spool")  # a plain open for reading would wait forever
    assert recover_spools(platform) == 120
    assert (directory / "w9.1.2.000001.spool").exists() and loop.is_symlink()  # left alone
