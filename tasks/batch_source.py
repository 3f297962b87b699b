"""Where a batch comes from, read a chunk at a time: a Parquet file (by record batches), a CSV file (pandas
chunks) or a SQL table or query (SQLAlchemy, rows streamed from a server-side cursor). Memory is bounded by the
chunk, never by the input.

A source also names itself for logs and records (`label`, never with a password in it) and fingerprints its input
(`identity`): the batch id, and so resuming a killed run and replacing its own outputs, rests on it."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, TypeVar

import pandas as pd

from modelops.errors import DataError, ModelOpsError
from tasks.scoring import file_digest

# A chunk and how far through the input it ends (0..1), or None where the size is unknown.
Chunk = tuple[pd.DataFrame, float | None]
P = TypeVar("P")


class BatchSource(Protocol):
    label: str

    def identity(self) -> str: ...

    def chunks(self, rows: int) -> Iterator[Chunk]: ...


def _unreadable(label: str, exc: Exception, kind: str) -> DataError:
    return DataError(f"batch {label} cannot be read: {exc}", f"check that it is valid {kind}")


@dataclass
class _FileSource:
    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def identity(self) -> str:
        return file_digest(self.path)


class ParquetSource(_FileSource):
    def chunks(self, rows: int) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(self.path)
            total, done = handle.metadata.num_rows, 0
            for batch in handle.iter_batches(batch_size=rows):
                done += batch.num_rows
                yield batch.to_pandas(), done / total
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
            raise _unreadable(self.label, exc, "Parquet") from exc


class CsvSource(_FileSource):
    def chunks(self, rows: int) -> Iterator[Chunk]:
        size = max(self.path.stat().st_size, 1)
        with self.path.open("rb") as handle:
            try:
                reader = pd.read_csv(handle, chunksize=rows)
                for frame in reader:
                    # The parser reads ahead in blocks: the position is where it has read to, a fair measure.
                    yield frame, min(handle.tell() / size, 1.0)
            except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise _unreadable(self.label, exc, "CSV") from exc


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass
class SqlSource:
    """A table (rows ordered by the model's id column, so a resumed run meets the same chunks in the same order)
    or a query (which should ORDER BY something unique, for the same reason)."""

    url: str
    table: str | None
    query: str | None
    order_by: str

    @property
    def label(self) -> str:
        from sqlalchemy.engine import make_url

        where = make_url(self.url).render_as_string(hide_password=True)
        return f"{where} table {self.table}" if self.table else f"{where} query {self.query}"

    def identity(self) -> str:
        # The database's content is not hashed (that would read it twice): its address and the selection stand for
        # it. Scoring changed rows under the same selection again replaces the earlier scoring of that selection.
        return hashlib.sha256(f"sql\x1f{self.label}".encode()).hexdigest()

    def _select(self):  # type: ignore[no-untyped-def]
        import sqlalchemy as sa

        if self.query:
            return sa.text(self.query)
        schema, _, name = self.table.rpartition(".") if self.table else ("", "", "")
        table = sa.table(name, schema=schema or None)
        return sa.select(sa.text("*")).select_from(table).order_by(sa.column(self.order_by))

    def chunks(self, rows: int) -> Iterator[Chunk]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as connection:
                select = self._select()
                counted = (sa.text(f"SELECT COUNT(*) FROM ({self.query}) AS counted") if self.query
                           else sa.select(sa.func.count()).select_from(select.subquery()))
                total = connection.execute(counted).scalar_one()
                # stream_results: a server-side cursor where the driver has one; max_row_buffer bounds its buffer.
                streamed = connection.execution_options(stream_results=True, max_row_buffer=rows)
                result = streamed.execute(select)
                done = 0
                for part in result.partitions(rows):
                    done += len(part)
                    yield pd.DataFrame(part, columns=list(result.keys())), done / max(total, 1)
        except sa.exc.SQLAlchemyError as exc:
            # The driver's message, never the URL (which may carry the password from the environment).
            raise DataError(f"batch {self.label} cannot be read: {type(exc).__name__}: {getattr(exc, 'orig', exc)}",
                            "check the database address, the table or query, and that the database is reachable") \
                from exc
        finally:
            engine.dispose()


SQL_URL_ENV_PREFIX = "env:"


def sql_url(given: str) -> str:
    """The database address: `env:NAME` reads it from the environment variable NAME (the way to pass a password);
    a URL given directly must not carry one: flow parameters are stored in Prefect and shown in its UI."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if given.startswith(SQL_URL_ENV_PREFIX):
        name = given[len(SQL_URL_ENV_PREFIX):]
        url = os.environ.get(name)
        if not url:
            raise DataError(f"environment variable {name!r} named by --input-sql is not set",
                            f"export {name}='dialect+driver://user:password@host/database'")
        return url
    try:
        parsed = make_url(given)
    except ArgumentError as exc:
        raise DataError("--input-sql is not a SQLAlchemy database URL",
                        "give e.g. postgresql+psycopg://user@host/db or sqlite:///path/to/file.db") from exc
    if parsed.password is not None:
        raise DataError(f"--input-sql {parsed.render_as_string(hide_password=True)} carries a password",
                        "put the URL in an environment variable and pass --input-sql env:NAME: a password in a "
                        "parameter is stored in Prefect's run records and in shell history")
    return given


def open_source(input_path: str | None, input_sql: str | None, input_table: str | None, input_query: str | None,
                id_column: str) -> BatchSource:
    """The source the score stage's parameters name: exactly one of a file path or a database (with a table or a
    query)."""
    if input_sql:
        if input_path:
            raise DataError("both --input-path and --input-sql were given", "score one source at a time")
        if bool(input_table) == bool(input_query):
            raise DataError("--input-sql needs exactly one of --input-table and --input-query",
                            "name the table to score (rows are read in id order) or give a SELECT")
        if input_table and not _NAME.match(input_table):
            raise DataError(f"--input-table {input_table!r} is not a table name",
                            "give a name like flights or schema.flights (letters, digits, underscores)")
        if input_query and not input_query.lstrip().lower().startswith(("select", "with")):
            raise DataError("--input-query is not a SELECT", "give one SELECT (or WITH ... SELECT) statement")
        return SqlSource(sql_url(input_sql), input_table, input_query, id_column)
    if input_table or input_query:
        raise DataError("--input-table/--input-query need --input-sql", "name the database with --input-sql")
    if not input_path:
        raise DataError("no batch to score", "give --input-path (Parquet/CSV) or --input-sql with a table or query")
    path = Path(input_path).resolve()
    if not path.is_file():
        raise DataError(f"batch file {path} does not exist", "pass the path of a Parquet or CSV file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return ParquetSource(path)
    if suffix == ".csv":
        return CsvSource(path)
    raise DataError(f"batch file {path} has suffix {suffix!r}", "give a .parquet or .csv file")


def read_ahead(chunks: Iterator[Chunk], prepare: Callable[[int, pd.DataFrame], P]
               ) -> Iterator[tuple[int, Chunk, P | ModelOpsError]]:
    """Each chunk with its index and what `prepare` made of it (or the ModelOpsError it raised, for the caller to
    record against that chunk), reading and preparing chunk i+1 on a background thread while the caller scores
    chunk i: the cores would otherwise idle at every chunk boundary while one thread reads and checks. One chunk
    ahead at most, so memory stays bounded by the chunk size. An error reading the input is raised here, in order."""
    from concurrent.futures import ThreadPoolExecutor

    position = iter(enumerate(chunks))

    def next_prepared() -> tuple[int, Chunk, P | ModelOpsError] | None:
        item = next(position, None)
        if item is None:
            return None
        index, chunk = item
        try:
            return index, chunk, prepare(index, chunk[0])
        except ModelOpsError as exc:
            return index, chunk, exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelops-read-ahead") as pool:
        pending = pool.submit(next_prepared)
        while (ready := pending.result()) is not None:
            pending = pool.submit(next_prepared)
            yield ready
