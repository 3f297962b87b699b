from __future__ import annotations

import pandas as pd
import pytest

from modelops.errors import SchemaMismatchError
from tasks.schema import conform_to_signature

COLUMNS = [("hour", "long"), ("temp", "double"), ("carrier", "string")]


def test_conforming_input_is_cast_and_ordered() -> None:
    frame = pd.DataFrame({"carrier": ["UA", "AA"], "temp": [30, 31], "hour": [5.0, 6.0], "extra": [1, 2]})
    out = conform_to_signature(frame, COLUMNS, "batch.csv")
    assert list(out.columns) == ["hour", "temp", "carrier"]
    assert str(out["hour"].dtype) == "int64" and str(out["temp"].dtype) == "float64"


def test_a_missing_column_is_named() -> None:
    frame = pd.DataFrame({"hour": [1], "carrier": ["UA"]})
    with pytest.raises(SchemaMismatchError, match=r"batch.csv: missing column\(s\) \['temp'\]"):
        conform_to_signature(frame, COLUMNS, "batch.csv")


@pytest.mark.parametrize("column, values, expected", [
    ("temp", ["warm", "cold"], "double"),
    ("hour", [1.5, 2.0], "long"),
    ("carrier", [1, 2], "string"),
])
def test_a_mistyped_column_is_named_with_expected_type(column: str, values: list, expected: str) -> None:
    frame = pd.DataFrame({"hour": [1, 2], "temp": [1.0, 2.0], "carrier": ["UA", "AA"]})
    frame[column] = values
    with pytest.raises(SchemaMismatchError) as raised:
        conform_to_signature(frame, COLUMNS, "batch.csv")
    assert f"column {column!r}" in str(raised.value) and f"expects {expected}" in str(raised.value)
