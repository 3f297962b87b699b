"""score: score a batch (Parquet, CSV or a SQL table/query, chunk by chunk) with the deployed version and keep the
prediction log."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from prefect import flow
from prefect.futures import PrefectFuture
from pydantic import BaseModel

from modelops.lineage_events import STAGE_HOOKS
from modelops.errors import DataError, ModelOpsError
from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lifecycle import Role, Stage
from modelops.platform import Platform, get_platform
from modelops.spec import LifecycleSpec, load_spec
from tasks.integrity import VerifiedModel, load_verified_model
from tasks.batch_progress import ScoreProgress
from tasks.batch_source import BatchSource, SqlSource, open_source
from tasks.outputs import check_overwrite, done_chunks, output_target, parts_dir
from tasks.prediction_log import batch_id_for, log_failed_batch_task
from tasks.scoring import WorkerModel, score_frame_task
from tasks.task_runners import chunk_runner
from tasks.serving import (ChallengerShare, record_scored_batch_task, record_scored_chunk_task, score_challenger_task,
                           scoring_version_task)


DEFAULT_BATCH_ROWS = 100_000


class Scored(BaseModel):
    model: str
    version: str
    rows: int
    output_path: str
    batch_id: str
    positive_rate: float | None = None
    challenger: str | None = None
    challenger_rows: int = 0
    chunks: int = 1
    resumed_chunks: int = 0  # chunks a killed earlier run had completed, not scored again


@flow(name="score", log_prints=True, **STAGE_HOOKS)
def score(model: ModelName, input_path: str | None = None, version: Version | None = None,
          output_path: str | None = None, input_sql: str | None = None, input_table: str | None = None,
          input_query: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> Scored:
    """Score a Parquet/CSV file (`input_path`) or a SQL table or query (`input_sql` with `input_table` or
    `input_query`) with `version`, or with the version the governance store deploys as champion, `batch_rows` rows
    at a time. `output_path` is a Parquet file name inside the output root (default
    `<model>/<input>.v<version>.parquet`). A run killed midway, run again on the same input, resumes after its last
    completed chunk."""
    handed, result = hand_over(Stage.score, dict(model=model, input_path=input_path, version=version,
                                                 output_path=output_path, input_sql=input_sql,
                                                 input_table=input_table, input_query=input_query,
                                                 batch_rows=batch_rows))
    if handed:
        return result
    return standard_score(load_spec(model), input_path, version, output_path, input_sql=input_sql,
                          input_table=input_table, input_query=input_query, batch_rows=batch_rows)


def _default_name(source: BatchSource) -> str:
    if isinstance(source, SqlSource):
        return source.table or f"query-{source.identity()[:12]}"
    return Path(source.label).stem


def standard_score(spec: LifecycleSpec, input_path: str | None = None, version: str | None = None,
                   output_path: str | None = None, *, input_sql: str | None = None, input_table: str | None = None,
                   input_query: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> Scored:
    source = open_source(input_path, input_sql, input_table, input_query, spec.data.id_column)
    if batch_rows < 1:
        raise DataError(f"batch_rows is {batch_rows}", "give a positive number of rows per chunk, e.g. 100000")
    platform = get_platform()
    version, role = scoring_version_task(platform, spec, version)
    digest = source.identity()
    target = output_target(platform.settings.outputs_dir, output_path,
                           f"{spec.name}/{_default_name(source)}.v{version}.parquet")
    batch_id = batch_id_for(spec.name, version, role, digest)
    check_overwrite(target, batch_id)
    stack = ExitStack()
    runner = chunk_runner()  # a Dask scheduler that does not answer is refused before anything is scored
    model = load_verified_model(platform, spec, version, "scoring")  # refuses retired, unscanned, changed files
    parts = parts_dir(target, batch_id, batch_rows)
    resumed = done_chunks(parts)
    progress = ScoreProgress(spec.name, source.label, resumed)
    progress.start()
    chunks, start, rows, positives, challenger = 0, 0, 0, 0.0, ChallengerShare(None, 0)
    recording: PrefectFuture[str] | None = None  # the previous chunk's log and part, written while this one scores
    try:
        if runner is not None:
            stack.enter_context(runner)
        for index, (frame, read) in enumerate(source.chunks(batch_rows)):
            chunks, start = index + 1, start + len(frame)
            if index < resumed:  # done by the killed run: its part and log rows are kept as they are
                continue
            # Chunk 0 keeps the batch's own digest: a batch of one chunk is logged exactly as before chunking.
            chunk_digest = digest if index == 0 else f"{digest}:{batch_rows}:{index}"
            try:
                outputs, log = score_chunk(runner, platform, spec, version, model, frame, source.label)
            except ModelOpsError as exc:
                log_failed_batch_task(platform, spec, version, role, frame, source.label, chunk_digest, str(exc))
                if index == 0:
                    raise
                # Row numbers in the message count from the chunk's first row: say where that is in the input.
                raise type(exc)(f"{exc.what} (in chunk {index} of {batch_rows} rows: rows {start - len(frame)} to "
                                f"{start - 1} of the input, 0-based)", exc.fix) from exc
            outputs["version"] = version
            if role == Role.champion:
                outputs, log, share = score_challenger_task(platform, spec, frame, outputs, log, source.label,
                                                            chunk_digest)
                challenger = ChallengerShare(share.version or challenger.version, challenger.rows + share.rows)
            if recording is not None:
                recording.result()  # chunks are recorded in order: a part means every earlier one is there
            recording = record_scored_chunk_task.submit(platform, spec, version, role, outputs, log, source.label,
                                                        chunk_digest, parts, index)
            rows += len(outputs)
            positives += float(outputs["prediction"].sum())
            progress.advance(read, start)
    finally:
        model.close()  # a version in its own environment: its scoring worker stops with the batch
        if recording is not None:
            recording.result()
        stack.close()
    if chunks == 0:
        raise DataError(f"batch {source.label} has no rows", "score a batch with at least one row")
    written = record_scored_batch_task(spec, version, source.label, parts, chunks, target, batch_id, challenger)
    progress.finish()
    print(f"{spec.name} v{version}: scored {written} rows of {source.label} in {chunks} chunk(s)"
          + (f", {resumed} done by an earlier run" if resumed else "") + f" -> {target}")
    positive_rate = None
    if spec.task == "classification":
        # The resumed chunks' predictions are in the published output, not in this run's memory.
        positive_rate = positives / rows if not resumed else _positive_rate(target)
    return Scored(model=spec.name, version=version, rows=written, output_path=str(target), batch_id=batch_id,
                  positive_rate=positive_rate, challenger=challenger.version, challenger_rows=challenger.rows,
                  chunks=chunks, resumed_chunks=resumed)


def score_chunk(runner: Any | None, platform: Platform, spec: LifecycleSpec, version: str, model: VerifiedModel,
                frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A chunk's predictions and log rows: in this process, or on a Dask worker (MODELOPS_DASK_ADDRESS) that opens
    the version itself."""
    if runner is None:
        return score_frame_task(spec, model, model.columns, frame, label)
    remote = WorkerModel(platform.settings, spec.name, version)
    return runner.submit(score_frame_task, {"spec": spec, "pyfunc": remote, "columns": model.columns,
                                            "frame": frame, "source": label}).result()


def _positive_rate(target: Path) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return float(pc.mean(pq.read_table(target, columns=["prediction"])["prediction"]).as_py())
