"""Where batch outputs may be written: under the output root, never over a file that is not an earlier output of
the same batch. `output_path` is a flow parameter anyone with the Prefect UI can set, so it is treated as
untrusted: pointed at the governance database it would otherwise destroy the store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelops.errors import OutputPathError
from modelops.files import replace_atomically

BATCH_KEY = b"modelops.batch_id"


def output_target(root: Path, requested: str | None, default_name: str) -> Path:
    """The file to write: `requested` (relative to the root, or absolute inside it) or the default name. Symlinks
    are resolved before the check, so a link cannot lead outside the root."""
    root = root.resolve()
    candidate = Path(requested) if requested else Path(default_name)
    target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not target.is_relative_to(root) or target == root:
        raise OutputPathError(f"output path {requested!r} is outside the output root {root}",
                              "give a file name (or a path) inside the output root; set MODELOPS_OUTPUT_ROOT to "
                              "write batch outputs elsewhere")
    if target.suffix.lower() != ".parquet":
        raise OutputPathError(f"output path {requested!r} does not end in .parquet",
                              "batch outputs are Parquet files: name the output <something>.parquet")
    return target


def written_by_batch(path: Path) -> str | None:
    """The batch id an earlier output file carries, or None for any other file."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - anything unreadable as Parquet is not an output of ours
        return None
    value = metadata.get(BATCH_KEY)
    return value.decode() if value else None


def check_overwrite(target: Path, batch_id: str) -> None:
    if target.exists() and (not target.is_file() or written_by_batch(target) != batch_id):
        raise OutputPathError(f"{target} exists and is not an earlier output of this batch",
                              "choose a new output file name; existing files are never overwritten")


def write_output(frame: pd.DataFrame, target: Path, batch_id: str) -> None:
    """Atomically, with the batch id in the file's metadata (so a re-run may replace its own output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_overwrite(target, batch_id)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), BATCH_KEY: batch_id.encode()})
    replace_atomically(target, lambda handle: pq.write_table(table, handle))


# Chunked scoring writes each chunk's outputs as a part file of a staging folder beside the target, and publishes
# the target (one Parquet file, as before) only when every chunk is done. A part file is written atomically after
# its chunk's prediction log: its presence is the record that the chunk is complete, so a killed run resumes after
# the last part, and the target never holds half a batch.


def parts_dir(target: Path, batch_id: str, chunk_rows: int) -> Path:
    """The staging folder of one batch scored in chunks of `chunk_rows` (other chunk sizes cut other chunks)."""
    return target.parent / f".{target.name}.{batch_id}.{chunk_rows}.parts"


def part_path(folder: Path, index: int) -> Path:
    return folder / f"part-{index:06d}.parquet"


def done_chunks(folder: Path) -> int:
    """How many chunks, from the first, have their part: a resumed run starts after them."""
    count = 0
    while part_path(folder, count).is_file():
        count += 1
    return count


def write_part(frame: pd.DataFrame, folder: Path, index: int) -> None:
    replace_atomically(part_path(folder, index), lambda handle: frame.to_parquet(handle, index=False))


def publish_parts(folder: Path, chunks: int, target: Path, batch_id: str) -> int:
    """Join the parts into the target a part at a time (bounded memory), atomically and tagged with the batch id,
    then drop the staging folder. Returns the rows written."""
    import shutil

    import pyarrow.parquet as pq

    check_overwrite(target, batch_id)
    first = pq.read_schema(part_path(folder, 0))
    schema = first.with_metadata({**(first.metadata or {}), BATCH_KEY: batch_id.encode()})
    rows = 0

    def write(handle) -> None:  # type: ignore[no-untyped-def]
        nonlocal rows
        with pq.ParquetWriter(handle, schema) as writer:
            for index in range(chunks):
                table = pq.read_table(part_path(folder, index)).cast(schema)
                rows += table.num_rows
                writer.write_table(table)

    replace_atomically(target, write)
    shutil.rmtree(folder, ignore_errors=True)
    return rows
