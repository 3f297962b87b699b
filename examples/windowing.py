"""Shared helper of the example loaders: select the rows of a half-open date window."""

from __future__ import annotations

from datetime import date

import pandas as pd


def rows_in_window(frame: pd.DataFrame, timestamp_column: str, start: date, end: date) -> pd.DataFrame:
    stamps = frame[timestamp_column]
    mask = (stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))
    return frame.loc[mask].reset_index(drop=True)
