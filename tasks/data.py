"""Loading a model's data window through its spec, and fingerprinting it."""

from __future__ import annotations

import hashlib
import pandas as pd

from modelops.errors import DataError, SpecError
from modelops.spec import LifecycleSpec, Window
from tasks import as_task


def load_window(spec: LifecycleSpec, window: Window) -> pd.DataFrame:
    """Rows of [start, end) from the spec's loader, checked to hold every column the spec names."""
    loader = spec.entry("loader")
    frame = loader(window.start, window.end)
    if not isinstance(frame, pd.DataFrame):
        raise SpecError(f"{spec.data.loader} returned {type(frame).__name__}, not a pandas DataFrame",
                        "make the loader return a DataFrame")
    needed = [spec.data.id_column, spec.data.timestamp_column, spec.data.target, *spec.data.features.all]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise DataError(f"{spec.data.loader} for {window.start}..{window.end} lacks columns {missing}",
                        "fix the loader or the column names in the spec's data section")
    if frame.empty:
        raise DataError(f"{spec.name}: no rows in {window.start}..{window.end}",
                        "choose a window in which the data has rows")
    return frame


def features_of(spec: LifecycleSpec, frame: pd.DataFrame) -> pd.DataFrame:
    return frame[spec.data.features.all]


def data_hash(frame: pd.DataFrame) -> str:
    """Content hash of a frame (values and column names), stable across runs and row order kept."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


load_window_task = as_task(load_window)
