"""The gateway's request bodies: each protocol read into one shape; each bad input refused naming the field."""

from __future__ import annotations

import math

import orjson
import pytest

from serving.inputs import MAX_ROWS, InputError, InputSchema, parse_mlflow, parse_native, parse_v2

SCHEMA = InputSchema((("distance", "double"), ("day_of_week", "long"), ("carrier", "string")), "flight_id",
                     "scheduled_departure")
ROW = {"distance": 1089.0, "day_of_week": 2, "carrier": "UA"}


def refused(parse, body: object) -> InputError:  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InputError) as caught:
        parse(raw, SCHEMA)
    return caught.value


def test_native_rows_are_read_column_by_column_with_the_clients_ids_and_event_times() -> None:
    parsed = parse_native(orjson.dumps({"rows": [{**ROW, "flight_id": "a1", "scheduled_departure":
                                                  "2013-07-01T05:00:00-04:00"}], "routing_key": "k"}), SCHEMA)
    assert parsed.columns == {"distance": [1089.0], "day_of_week": [2], "carrier": ["UA"]}
    assert parsed.ids == ["a1"] and parsed.routing_key == "k"
    assert parsed.event_times is not None and parsed.event_times[0].isoformat() == "2013-07-01T09:00:00"


def test_mlflow_dataframe_split_and_records_read_the_same_rows() -> None:
    split = parse_mlflow(orjson.dumps({"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}),
                         SCHEMA)
    records = parse_mlflow(orjson.dumps({"dataframe_records": [ROW]}), SCHEMA)
    assert split.columns == records.columns == {"distance": [1089.0], "day_of_week": [2], "carrier": ["UA"]}


def test_v2_tensors_become_columns_and_the_request_id_is_kept() -> None:
    body = {"id": "req-7", "inputs": [{"name": "distance", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]},
                                      {"name": "day_of_week", "shape": [2, 1], "datatype": "INT64", "data": [[1], [3]]},
                                      {"name": "carrier", "shape": [2], "datatype": "BYTES", "data": ["UA", "B6"]}]}
    parsed = parse_v2(orjson.dumps(body), SCHEMA)
    assert parsed.rows == 2 and parsed.columns["day_of_week"] == [1, 3] and parsed.extra == {"id": "req-7"}


def test_a_null_float_is_missing_and_python_nan_is_read_as_missing_too() -> None:
    parsed = parse_native(b'{"rows": [{"distance": NaN, "day_of_week": 1, "carrier": "UA"}]}', SCHEMA)
    assert math.isnan(parsed.columns["distance"][0])


def test_text_in_a_number_column_names_the_row_and_column() -> None:
    error = refused(parse_native, {"rows": [ROW, {**ROW, "distance": "far"}]})
    assert error.status == 422 and error.field == "rows[1].distance" and "'distance' must be a number" in error.problem


def test_a_missing_column_is_named() -> None:
    error = refused(parse_native, {"rows": [{"distance": 1.0, "carrier": "UA"}]})
    assert (error.status, error.field, error.kind) == (422, "day_of_week", "missing-column")


def test_an_extra_column_is_named_with_the_columns_the_model_takes() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "tail_number": "N123"}]})
    assert error.kind == "extra-column" and "tail_number" in error.problem and "'carrier'" in error.problem


def test_a_null_where_the_type_allows_no_missing_value_is_refused() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "day_of_week": None}]})
    assert error.field == "rows[0].day_of_week" and "never missing" in error.problem


def test_infinity_is_refused_as_malformed_json() -> None:
    error = refused(parse_native, b'{"rows": [{"distance": Infinity, "day_of_week": 1, "carrier": "UA"}]}')
    assert (error.status, error.kind) == (400, "malformed-json")


def test_an_empty_body_is_refused() -> None:
    assert refused(parse_native, b"").kind == "empty-body"


def test_too_many_rows_are_refused_with_413() -> None:
    error = refused(parse_native, {"rows": [ROW] * (MAX_ROWS + 1)})
    assert (error.status, error.kind) == (413, "too-large")


def test_a_repeated_prediction_id_in_one_request_is_refused() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "flight_id": "x"}, {**ROW, "flight_id": "x"}]})
    assert error.kind == "duplicate-id" and "'x'" in error.problem


def test_a_boolean_is_not_a_number() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "day_of_week": True}]})
    assert error.field == "rows[0].day_of_week" and "got a boolean" in error.problem


def test_a_v2_tensor_whose_shape_disagrees_with_its_data_is_refused() -> None:
    body = {"inputs": [{"name": "distance", "shape": [3], "datatype": "FP64", "data": [1.0]}]}
    error = refused(parse_v2, body)
    assert error.field == "inputs[0].data" and "shape says 3" in error.problem


def test_an_unreadable_event_time_is_refused_naming_the_row() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "scheduled_departure": "yesterday"}]})
    assert error.field == "rows[0].scheduled_departure" and "ISO 8601" in error.problem


def test_an_event_time_in_the_future_is_refused() -> None:
    """The monitoring window ends at the newest logged event: one future time would move it where no traffic is."""
    error = refused(parse_native, {"rows": [{**ROW, "scheduled_departure": "2261-12-31T00:00:00"}]})
    assert error.kind == "out-of-range" and "2261-12-31" in error.problem and "future" in error.problem


def test_an_event_time_with_no_utc_equivalent_is_refused() -> None:
    error = refused(parse_native, {"rows": [{**ROW, "scheduled_departure": "0001-01-01T00:00:00+01:00"}]})
    assert error.field == "rows[0].scheduled_departure" and "ISO 8601" in error.problem


def test_an_integer_too_large_for_a_float_column_is_refused() -> None:
    body = b'{"rows": [{"distance": 1' + b"0" * 400 + b', "day_of_week": 1, "carrier": "UA"}]}'
    error = refused(parse_native, body)
    assert error.field == "rows[0].distance" and "finite number" in error.problem


def test_text_with_a_lone_surrogate_is_refused() -> None:
    body = rb'{"rows": [{"distance": 1.0, "day_of_week": 1, "carrier": "\ud800"}]}'  # JSON's escape, no character
    assert refused(parse_native, body).field == "rows[0].carrier"


def test_a_routing_key_with_a_lone_surrogate_is_refused() -> None:
    body = rb'{"rows": [{"distance": 1.0, "day_of_week": 1, "carrier": "UA"}], "routing_key": "\ud800"}'
    assert refused(parse_native, body).field == "routing_key"
