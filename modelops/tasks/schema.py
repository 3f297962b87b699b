"""Checking input data against a model's signature before it reaches the model."""

from __future__ import annotations

import pandas as pd
from pandas.api import types as ptypes

from modelops.errors import SchemaMismatchError

_INTEGER = {"long", "integer"}
_FLOAT = {"double", "float"}


def conform_to_signature(frame: pd.DataFrame, columns: list[tuple[str, str]], source: str) -> pd.DataFrame:
    """Return the signature's columns of `frame`, in order, with safe casts applied.

    Raises SchemaMismatchError naming the first column that is missing or whose values cannot take the type.
    """
    missing = [name for name, _ in columns if name not in frame.columns]
    if missing:
        raise SchemaMismatchError(
            f"{source}: missing column(s) {missing} required by the model signature",
            f"provide every input column: {[name for name, _ in columns]}")
    out = {}
    for name, kind in columns:
        series = frame[name]
        if kind in _FLOAT:
            if not (ptypes.is_float_dtype(series) or ptypes.is_integer_dtype(series) or ptypes.is_bool_dtype(series)):
                raise _mistyped(source, name, kind, series)
            out[name] = series.astype("float64")
        elif kind in _INTEGER:
            if ptypes.is_integer_dtype(series):
                out[name] = series.astype("int64")
            elif ptypes.is_float_dtype(series) and series.notna().all() and (series % 1 == 0).all():
                out[name] = series.astype("int64")  # 3.0 is a lossless 3; CSV readers produce such floats
            else:
                raise _mistyped(source, name, kind, series)
        elif kind == "string":
            if not (ptypes.is_object_dtype(series) or ptypes.is_string_dtype(series)):
                raise _mistyped(source, name, kind, series)
            out[name] = series.astype(object)
        elif kind == "boolean":
            if not ptypes.is_bool_dtype(series):
                raise _mistyped(source, name, kind, series)
            out[name] = series
        else:
            out[name] = series
    return pd.DataFrame(out, index=frame.index)


def _mistyped(source: str, name: str, kind: str, series: pd.Series) -> SchemaMismatchError:
    sample = series.dropna().head(1).tolist()
    return SchemaMismatchError(
        f"{source}: column {name!r} has type {series.dtype} (e.g. {sample!r}) but the model expects {kind}",
        f"convert {name!r} to {kind} before scoring")
