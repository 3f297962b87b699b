"""Which batch source the score stage's parameters name, and the refusals that keep passwords out of run records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modelops.errors import DataError
from modelops.cli_progress import bar_text
from tasks.batch_source import CsvSource, ParquetSource, SqlSource, open_source


def test_a_database_url_with_a_password_is_refused_without_repeating_the_password() -> None:
    with pytest.raises(DataError, match="carries a password") as refused:
        open_source(None, "postgresql://scorer:s3cret@db.internal/flights", "flights", None, "flight_id")
    assert "s3cret" not in str(refused.value) and "env:NAME" in refused.value.fix


def test_env_names_the_variable_that_holds_the_url_and_labels_never_show_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTS_DB", "postgresql://scorer:s3cret@db.internal/flights")
    source = open_source(None, "env:FLIGHTS_DB", "public.flights", None, "flight_id")
    assert isinstance(source, SqlSource) and source.url.endswith("s3cret@db.internal/flights")
    assert "s3cret" not in source.label and "***" in source.label


def test_an_unset_variable_is_named() -> None:
    with pytest.raises(DataError, match="'NO_SUCH_DB_URL' named by --input-sql is not set"):
        open_source(None, "env:NO_SUCH_DB_URL", "flights", None, "flight_id")


@pytest.mark.parametrize("table", ["flights; drop table x", "1flights", "a.b.c"])
def test_a_table_name_must_be_a_plain_name(table: str) -> None:
    with pytest.raises(DataError, match="is not a table name"):
        open_source(None, "sqlite:///x.db", table, None, "flight_id")


def test_a_database_needs_exactly_one_of_table_and_query() -> None:
    with pytest.raises(DataError, match="exactly one of --input-table and --input-query"):
        open_source(None, "sqlite:///x.db", "flights", "select * from flights", "flight_id")


def test_a_file_is_read_by_its_suffix_and_a_missing_one_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": range(5)})
    frame.to_parquet(tmp_path / "a.parquet")
    frame.to_csv(tmp_path / "a.csv", index=False)
    assert isinstance(open_source(str(tmp_path / "a.parquet"), None, None, None, "id"), ParquetSource)
    assert isinstance(open_source(str(tmp_path / "a.csv"), None, None, None, "id"), CsvSource)
    with pytest.raises(DataError, match="does not exist"):
        open_source(str(tmp_path / "b.csv"), None, None, None, "id")


def test_csv_chunks_cover_the_file_and_end_at_the_whole_of_it(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    pd.DataFrame({"id": range(2500), "x": [0.5] * 2500}).to_csv(path, index=False)
    chunks = list(CsvSource(path).chunks(1000))
    assert [len(frame) for frame, _ in chunks] == [1000, 1000, 500]
    assert chunks[-1][1] == 1.0 and all(read is not None and 0 < read <= 1 for _, read in chunks)


def test_the_bar_shows_the_share_read_and_the_rows_scored() -> None:
    # 1,500 of 3,000 rows read, 500 of them in this run's second: a resumed run's rate counts its own rows
    assert bar_text(1500, 3000, "rows", 1.0, 500, width=10) == "[#####.....]  50.0% 1,500 of 3,000 rows (500 rows/s)"
    assert bar_text(1500, None, "rows", 1.0, 1500) == "1,500 rows (1,500 rows/s)"
