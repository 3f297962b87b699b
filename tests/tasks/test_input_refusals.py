"""Input that would become wrong data is refused, naming the column, a bad value and where it is: real flights of
2013 scored by a real model trained on them, each test spoiling one thing of an otherwise good batch."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.errors import DataError, SchemaMismatchError
from modelops.spec import LifecycleSpec, Window, load_spec
from tasks.data import features_of, load_window
from tasks.schema import conform_to_signature
from tasks.scoring import score_frame

SOURCE = "batch.csv"


@pytest.fixture(scope="module")
def spec() -> LifecycleSpec:
    return load_spec("flight-delay")


@pytest.fixture(scope="module")
def model(spec: LifecycleSpec) -> Any:
    frame = load_window(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 8)))
    return spec.entry("trainer")(features_of(spec, frame), frame[spec.data.target], {"max_iter": 20})


@pytest.fixture(scope="module")
def columns(spec: LifecycleSpec) -> list[tuple[str, str]]:
    """The model's signature as the catalog reads it back: (name, MLflow type)."""
    from mlflow.models import infer_signature

    example = features_of(spec, load_window(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 2))))
    return [(col.name, col.type.name) for col in infer_signature(example).inputs.inputs]


@pytest.fixture
def batch(spec: LifecycleSpec) -> pd.DataFrame:
    """A day of production traffic: inputs, id and timestamp, no label."""
    frame = load_window(spec, Window(start=date(2013, 2, 15), end=date(2013, 2, 16)))
    return frame.drop(columns=[spec.data.target]).reset_index(drop=True)


def refusal(spec: LifecycleSpec, model: Any, columns: list[tuple[str, str]], frame: pd.DataFrame,
            error: type[DataError] = DataError) -> str:
    with pytest.raises(error) as raised:
        score_frame(spec, model, columns, frame, SOURCE)
    return str(raised.value)


# --- timestamps ---------------------------------------------------------------------------------------------------

def test_a_batch_without_its_timestamp_column_is_refused_not_dated_now(spec: LifecycleSpec, model: Any,
                                                                      columns: list[tuple[str, str]],
                                                                      batch: pd.DataFrame) -> None:
    message = refusal(spec, model, columns, batch.drop(columns=["scheduled_departure"]))
    assert "column 'scheduled_departure' (data.timestamp_column of the spec) is missing" in message


def test_an_unparseable_timestamp_is_refused_naming_value_and_row(spec: LifecycleSpec, model: Any,
                                                                 columns: list[tuple[str, str]],
                                                                 batch: pd.DataFrame) -> None:
    text = batch.assign(scheduled_departure=batch["scheduled_departure"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.loc[7, "scheduled_departure"] = "not a date"
    message = refusal(spec, model, columns, text)
    assert (f"timestamp column 'scheduled_departure' has no ISO 8601 timestamp in 1 of {len(batch)} row(s), "
            "first 'not a date' at row 7") in message


def test_a_missing_timestamp_is_refused(spec: LifecycleSpec, model: Any, columns: list[tuple[str, str]],
                                        batch: pd.DataFrame) -> None:
    batch.loc[[3, 9], "scheduled_departure"] = pd.NaT
    message = refusal(spec, model, columns, batch)
    assert f"'scheduled_departure' has no ISO 8601 timestamp in 2 of {len(batch)} row(s), first NaT at row 3" in message


def test_a_time_without_a_date_is_refused_not_given_todays_date(spec: LifecycleSpec, model: Any,
                                                              columns: list[tuple[str, str]],
                                                              batch: pd.DataFrame) -> None:
    # dateutil reads "05:00" as 05:00 of the day it runs: old traffic would be logged as today's
    message = refusal(spec, model, columns, batch.assign(scheduled_departure="05:00"))
    assert f"in {len(batch)} of {len(batch)} row(s), first '05:00' at row 0" in message


def test_epoch_numbers_are_refused_not_read_as_nanoseconds_of_1970(spec: LifecycleSpec, model: Any,
                                                                  columns: list[tuple[str, str]],
                                                                  batch: pd.DataFrame) -> None:
    seconds = batch["scheduled_departure"].astype("int64") // 10**9
    message = refusal(spec, model, columns, batch.assign(scheduled_departure=seconds))
    assert f"first {int(seconds.iloc[0])} at row 0" in message and "numbers are not read as times" in message


def test_iso_timestamps_in_mixed_forms_are_logged_as_naive_utc(spec: LifecycleSpec, model: Any,
                                                              columns: list[tuple[str, str]],
                                                              batch: pd.DataFrame) -> None:
    text = batch.assign(scheduled_departure=batch["scheduled_departure"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.loc[0, "scheduled_departure"] = "2013-02-15T06:00:00+01:00"  # the same instant as 05:00 UTC
    _, log = score_frame(spec, model, columns, text, SOURCE)
    assert log["event_time"].dt.tz is None
    assert log.loc[0, "event_time"] == pd.Timestamp("2013-02-15 05:00:00")
    assert (log["event_time"].iloc[1:].to_numpy() == batch["scheduled_departure"].iloc[1:].to_numpy()).all()


# --- ids ----------------------------------------------------------------------------------------------------------

def test_a_batch_without_its_id_column_is_refused_not_given_made_up_ids(spec: LifecycleSpec, model: Any,
                                                                       columns: list[tuple[str, str]],
                                                                       batch: pd.DataFrame) -> None:
    message = refusal(spec, model, columns, batch.drop(columns=["flight_id"]))
    assert "column 'flight_id' (data.id_column of the spec) is missing" in message


def test_an_empty_or_null_id_is_refused(spec: LifecycleSpec, model: Any, columns: list[tuple[str, str]],
                                        batch: pd.DataFrame) -> None:
    ids = batch["flight_id"].astype(str).astype(object)
    ids[4], ids[11] = "  ", None
    message = refusal(spec, model, columns, batch.assign(flight_id=ids))
    assert f"id column 'flight_id' is empty or missing in 2 of {len(batch)} row(s), first '  ' at row 4" in message


def test_duplicate_ids_within_a_batch_are_refused_naming_the_id_and_count(spec: LifecycleSpec, model: Any,
                                                                         columns: list[tuple[str, str]],
                                                                         batch: pd.DataFrame) -> None:
    half = len(batch) // 2
    ids = batch["flight_id"].copy()
    ids.iloc[half:2 * half] = ids.iloc[:half].to_numpy()  # the second half re-sends the first half's ids
    message = refusal(spec, model, columns, batch.assign(flight_id=ids))
    first = str(ids.iloc[0])
    assert (f"id column 'flight_id' repeats {half} id(s) over {2 * half} of {len(batch)} rows; "
            f"{first!r} occurs 2 times, at rows [0, {half}]") in message


# --- features -----------------------------------------------------------------------------------------------------

def test_infinity_in_a_float_feature_is_refused_while_nan_passes(spec: LifecycleSpec, model: Any,
                                                                columns: list[tuple[str, str]],
                                                                batch: pd.DataFrame) -> None:
    batch.loc[2, "temp"] = np.nan  # missing: the model handles it
    batch.loc[5, "temp"] = np.inf
    batch.loc[8, "temp"] = -np.inf
    message = refusal(spec, model, columns, batch, SchemaMismatchError)
    assert "column 'temp' has type float64 but the model expects double" in message
    assert f"not so in 2 of {len(batch)} row(s), first inf at row 5" in message


def test_a_mistyped_column_quotes_a_bad_value_not_a_valid_one(columns: list[tuple[str, str]],
                                                             batch: pd.DataFrame) -> None:
    distance = batch["distance"].astype(object)
    distance[3] = "far"
    with pytest.raises(SchemaMismatchError) as raised:
        conform_to_signature(batch.assign(distance=distance), columns, SOURCE)
    assert "column 'distance' has type object but the model expects double" in str(raised.value)
    assert f"1 of {len(batch)} row(s), first 'far' at row 3" in str(raised.value)


def test_nan_in_an_integer_feature_is_refused_quoting_the_nan(columns: list[tuple[str, str]],
                                                             batch: pd.DataFrame) -> None:
    hours = batch["sched_dep_hour"].astype("float64")
    hours[6] = np.nan  # as a CSV reader makes an integer column with a gap
    with pytest.raises(SchemaMismatchError) as raised:
        conform_to_signature(batch.assign(sched_dep_hour=hours), columns, SOURCE)
    assert "column 'sched_dep_hour' has type float64 but the model expects long" in str(raised.value)
    assert f"1 of {len(batch)} row(s), first nan at row 6" in str(raised.value)


def test_a_missing_value_in_a_nullable_integer_is_refused_not_a_raw_pandas_error(
        columns: list[tuple[str, str]], batch: pd.DataFrame) -> None:
    hours = batch["sched_dep_hour"].astype("Int64")
    hours[1] = pd.NA
    with pytest.raises(SchemaMismatchError, match=r"'sched_dep_hour' has type Int64 .* first <NA> at row 1"):
        conform_to_signature(batch.assign(sched_dep_hour=hours), columns, SOURCE)


def test_a_null_category_is_refused_not_scored_as_an_unknown_one(columns: list[tuple[str, str]],
                                                                batch: pd.DataFrame) -> None:
    batch.loc[10, "carrier"] = None
    with pytest.raises(SchemaMismatchError) as raised:
        conform_to_signature(batch, columns, SOURCE)
    assert "column 'carrier' has type object but the model expects string" in str(raised.value)
    assert f"1 of {len(batch)} row(s), first None at row 10" in str(raised.value)


# --- the records kept of refused input and of labels --------------------------------------------------------------

def test_a_failed_batch_spans_its_readable_times_in_any_zone(state_home: Path, spec: LifecycleSpec) -> None:
    from modelops.platform import get_platform
    from tasks.prediction_log import log_failed_batch

    platform = get_platform()
    stamps = pd.Series([datetime(2013, 2, 15, 5, tzinfo=timezone.utc), datetime(2013, 2, 15, 6), "garbage"],
                       dtype=object)
    frame = pd.DataFrame({"scheduled_departure": stamps, "flight_id": [1, 2, 3]})
    log_failed_batch(platform, spec, "1", "champion", frame, SOURCE, "digest", "refused")
    [failed] = platform.store.prediction_batches(spec.name, include_failed=True)
    assert failed.status == "failed" and failed.rows == 3
    assert failed.first_event_at == datetime(2013, 2, 15, 5, tzinfo=timezone.utc)
    assert failed.last_event_at == datetime(2013, 2, 15, 6, tzinfo=timezone.utc)


def test_labels_with_a_missing_id_are_refused(state_home: Path, spec: LifecycleSpec) -> None:
    from modelops.platform import get_platform
    from tasks.prediction_log import record_ground_truth

    labels = pd.DataFrame({"flight_id": [101.0, np.nan, 103.0], "delayed": [1, 0, 1]})
    with pytest.raises(DataError, match=r"id column 'flight_id' is empty or missing in 1 of 3 row\(s\), first nan"):
        record_ground_truth(get_platform(), spec, labels, "labels.csv")


def test_labels_that_disagree_for_one_id_are_refused(state_home: Path, spec: LifecycleSpec) -> None:
    from modelops.platform import get_platform
    from tasks.prediction_log import record_ground_truth

    labels = pd.DataFrame({"flight_id": [101, 102, 101, 103], "delayed": [1, 0, 0, 1]})
    with pytest.raises(DataError, match=r"1 id\(s\) in 'flight_id' have conflicting labels; '101' is labelled \[1, 0\]"):
        record_ground_truth(get_platform(), spec, labels, "labels.csv")


def test_a_label_sent_twice_counts_once(state_home: Path, spec: LifecycleSpec) -> None:
    from modelops.platform import get_platform
    from tasks.prediction_log import ground_truth, record_ground_truth

    platform = get_platform()
    labels = pd.DataFrame({"flight_id": [101, 102, 101], "delayed": [1, 0, 1]})
    assert record_ground_truth(platform, spec, labels, "labels.csv").rows == 2
    assert sorted(ground_truth(platform, spec.name)["prediction_id"]) == ["101", "102"]
