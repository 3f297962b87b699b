"""Checking input data before it reaches a model or a log: the signature's columns and types, and the ids that ground
truth joins on. Input that would become wrong data is refused, naming the column and a value that is wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelops.errors import DataError, SchemaMismatchError

Fits = Callable[[object], bool]


def offenders(values: pd.Series, bad: np.ndarray) -> str:
    """'2 of 5 row(s), first 'x' at row 3 (0-based)': how much a refusal is about, and where to look first."""
    positions = np.flatnonzero(bad)
    first = values.iloc[positions[0]]
    plain = first.item() if isinstance(first, np.generic) else first  # 'inf', not 'np.float64(inf)'
    return f"{len(positions)} of {len(values)} row(s), first {plain!r} at row {positions[0]} (0-based)"


def _each(series: pd.Series, fits: Fits) -> np.ndarray:
    """Offending mask, value by value: only for columns whose dtype does not already say what they hold."""
    return ~np.array([fits(value) for value in series.to_numpy(dtype=object)], dtype=bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating))


def _is_whole(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer())


def _bad_floats(series: pd.Series) -> np.ndarray:
    # NaN stays: it is how a float feature says "missing", and the models handle it. ±inf is no measurement.
    if ptypes.is_numeric_dtype(series) or ptypes.is_bool_dtype(series):
        return np.isinf(series.astype("float64").to_numpy())
    return _each(series, lambda v: v is None or (_is_number(v) and not math.isinf(float(v))))  # type: ignore[arg-type]


def _bad_integers(series: pd.Series) -> np.ndarray:
    if ptypes.is_integer_dtype(series):
        return series.isna().to_numpy()  # a nullable Int64 may hold <NA>
    if ptypes.is_float_dtype(series):  # 3.0 is a lossless 3 (CSV readers produce such floats); NaN and 1.5 are not
        values = series.astype("float64").to_numpy()
        return ~(np.isfinite(values) & (np.nan_to_num(values) % 1 == 0))
    return _each(series, _is_whole)


def _bad_strings(series: pd.Series) -> np.ndarray:
    # A null is no category: one-hot encoding would silently score it as an unknown one.
    if ptypes.infer_dtype(series, skipna=True) == "string":
        return series.isna().to_numpy()
    return _each(series, lambda v: isinstance(v, str))


def _bad_booleans(series: pd.Series) -> np.ndarray:
    if ptypes.is_bool_dtype(series):
        return series.isna().to_numpy()  # a nullable boolean may hold <NA>
    return _each(series, lambda v: isinstance(v, (bool, np.bool_)))


@dataclass(frozen=True)
class _Rule:
    dtype: str | type  # what the model is given
    offending: Callable[[pd.Series], np.ndarray]
    holds: str  # what a value of the type is, for the message


_FLOAT = _Rule("float64", _bad_floats, "a finite number, NaN where it is missing")
_INTEGER = _Rule("int64", _bad_integers, "a whole number, never missing")
_RULES = {"double": _FLOAT, "float": _FLOAT, "long": _INTEGER, "integer": _INTEGER,
          "string": _Rule(object, _bad_strings, "text, never missing"),
          "boolean": _Rule("bool", _bad_booleans, "True or False, never missing")}


def conform_to_signature(frame: pd.DataFrame, columns: list[tuple[str, str]], source: str) -> pd.DataFrame:
    """Return the signature's columns of `frame`, in order, with safe casts applied.

    Raises SchemaMismatchError naming the first column that is missing or holds a value that cannot take its type
    (quoting that value and its row): text in a number column, NaN in an integer, null in a string or boolean, ±inf
    anywhere. NaN in a float column passes: it means "missing" and the models handle it.
    """
    missing = [name for name, _ in columns if name not in frame.columns]
    if missing:
        raise SchemaMismatchError(
            f"{source}: missing column(s) {missing} required by the model signature",
            f"provide every input column: {[name for name, _ in columns]}")
    out = {name: _conform_column(source, name, kind, frame[name]) for name, kind in columns}
    return pd.DataFrame(out, index=frame.index)


def _conform_column(source: str, name: str, kind: str, series: pd.Series) -> pd.Series:
    rule = _RULES.get(kind)
    if rule is None:
        return series  # a type this platform does not cast: MLflow's own enforcement judges it
    bad = rule.offending(series)
    if bad.any():
        raise SchemaMismatchError(
            f"{source}: column {name!r} has type {series.dtype} but the model expects {kind} ({rule.holds}); "
            f"not so in {offenders(series, bad)}",
            f"make every value of {name!r} {rule.holds} before scoring")
    return series.astype(rule.dtype)


def required_column(frame: pd.DataFrame, column: str, spec_key: str, source: str) -> pd.Series:
    """A column the platform needs besides the model's inputs; it is never made up when it is absent."""
    if column not in frame.columns:
        raise DataError(f"{source}: column {column!r} ({spec_key} of the spec) is missing",
                        f"give every row its {column!r}; it is never generated")
    return frame[column]


def required_ids(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """The id column as text: ground truth finds a prediction by it, so every row must have one."""
    values = required_column(frame, column, "data.id_column", source)
    ids = values.astype(str)
    if ptypes.is_integer_dtype(values.dtype):  # never missing, never blank: skip a string scan of every id
        return ids
    bad = (values.isna() | (ids.str.strip() == "")).to_numpy()  # checked before astype(str) turns None into 'None'
    if bad.any():
        raise DataError(f"{source}: id column {column!r} is empty or missing in {offenders(values, bad)}",
                        f"give every row its own non-empty {column!r}")
    return ids
