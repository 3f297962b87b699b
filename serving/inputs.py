"""Request bodies of the three protocols the gateway speaks, read into one shape and checked against the model's
signature before anything is scored.

Every problem is an InputError naming the field and what is wrong with it, so a client gets a 4xx it can act on,
never a 5xx. Values are checked in plain Python, request by request: one bad request must not fail the micro-batch
it would have been scored in, and a 1-row request is too small for pandas to pay for itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import orjson

MAX_BODY_BYTES = 8 * 1024 * 1024
# The earliest event time the prediction log's timestamps (datetime64[ns]) hold; the latest is now, give or take
# a client's clock skew.
EARLIEST = datetime(1678, 1, 1)
CLOCK_SKEW = timedelta(minutes=5)
MAX_ROWS = 10_000


class InputError(Exception):
    """A request the gateway refuses: `status` (4xx), the `field` at fault and the `problem` with it."""

    def __init__(self, status: int, field: str, problem: str, kind: str = "invalid-input") -> None:
        super().__init__(f"{field}: {problem}")
        self.status, self.field, self.problem, self.kind = status, field, problem, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"kind": self.kind, "field": self.field, "message": self.problem}}


@dataclass(frozen=True)
class InputSchema:
    """What a model version takes: its signature's columns, plus the spec's id and event-time columns, which a
    row may carry (the prediction id that ground truth joins on, and when the event happened)."""

    columns: tuple[tuple[str, str], ...]
    id_column: str
    timestamp_column: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


@dataclass
class ParsedRequest:
    """The rows of one request, column by column, values checked; ids and event times where the client gave them."""

    columns: dict[str, list[Any]]
    rows: int
    ids: list[str] | None = None
    event_times: list[datetime] | None = None
    routing_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # protocol details echoed in the answer (v2's request id)


def _loads(body: bytes) -> Any:
    if not body or not body.strip():
        raise InputError(400, "body", "the request body is empty; send a JSON object", "empty-body")
    if len(body) > MAX_BODY_BYTES:
        raise InputError(413, "body", f"the body has {len(body)} bytes, more than the limit of {MAX_BODY_BYTES}; "
                                      f"split it into requests of at most {MAX_ROWS} rows", "too-large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_error:
        # Python's json module writes NaN for a missing float (`requests.post(json=...)` does): read it as missing.
        # Infinity is no measurement and stays an error.
        try:
            return json.loads(body, parse_constant=_nan_only)
        except (ValueError, RecursionError):
            raise InputError(400, "body", f"malformed JSON: {fast_error}", "malformed-json") from None


def _nan_only(constant: str) -> float:
    if constant == "NaN":
        return math.nan
    raise ValueError(f"{constant} is not a number a model can take")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(422, where, f"expected a JSON object, got {_kind(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(422, where, f"expected a JSON array, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "" or not is_text(str(value)):
        raise InputError(422, key, f"expected a non-empty string, got {_kind(value)}")
    return str(value)


# --- value checks by MLflow signature type ------------------------------------------------------------------------

def _float(value: Any) -> Any:
    if value is None:
        return math.nan  # missing: the models handle it, as batch scoring does
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a number (or null where it is missing)")
    try:
        number = float(value)  # an integer beyond 1e308 overflows
    except OverflowError:
        raise ValueError("a finite number") from None
    if math.isinf(number):
        raise ValueError("a finite number")
    return number


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a whole number, never missing")
    if isinstance(value, float) and not value.is_integer():  # 3.0 is a lossless 3; NaN and 1.5 are not
        raise ValueError("a whole number, never missing")
    if not -(2 ** 63) <= value < 2 ** 63:
        raise ValueError("a whole number that fits 64 bits")
    return int(value)


def _string(value: Any) -> Any:
    if not isinstance(value, str) or not is_text(value):
        raise ValueError("text, never missing")
    return value


def is_text(value: str) -> bool:
    """Valid Unicode: a lone surrogate (which Python's JSON reader lets through) cannot be logged or hashed."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("true or false, never missing")
    return value


CHECKS: dict[str, Callable[[Any], Any]] = {"double": _float, "float": _float, "long": _integer, "integer": _integer,
                                           "string": _string, "boolean": _boolean}
JSON_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer", "string": "string",
              "boolean": "boolean"}


def _already_valid(kind: str, values: list[Any]) -> bool:
    """Values that each check would return unchanged (the common case, decided without a call per value): floats
    for a number column (finite or NaN, which stands for missing), 64-bit ints for a whole-number column, ASCII text (valid Unicode
    by construction) for a text column."""
    if kind in ("double", "float"):
        return all(type(value) is float and not math.isinf(value) for value in values)
    if kind in ("long", "integer"):
        return all(type(value) is int and -(2 ** 63) <= value < 2 ** 63 for value in values)
    if kind == "string":
        return all(type(value) is str and value.isascii() for value in values)
    return False


def _checked_column(name: str, kind: str, values: list[Any], where: Callable[[int], str]) -> list[Any]:
    if _already_valid(kind, values):
        return values
    check = CHECKS.get(kind)
    if check is None:
        raise InputError(422, name, f"the model's signature gives {name!r} the type {kind!r}, which online scoring "
                                    "does not take yet; score it in batch", "unsupported-type")
    out = []
    for position, value in enumerate(values):
        try:
            out.append(check(value))
        except ValueError as exc:
            raise InputError(422, where(position), f"{name!r} must be {exc} ({kind}), got {_kind(value)} "
                                                   f"{_preview(value)}", "wrong-type") from None
    return out


def _preview(value: Any) -> str:
    text = json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _row_count(rows: int) -> int:
    if rows == 0:
        raise InputError(422, "rows", "the request has no rows; send at least one", "empty-body")
    if rows > MAX_ROWS:
        raise InputError(413, "rows", f"{rows} rows in one request, more than the limit of {MAX_ROWS}; split it",
                         "too-large")
    return rows


def _ids(values: list[Any], where: Callable[[int], str]) -> list[str]:
    ids = []
    for position, value in enumerate(values):
        if (isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == ""
                or not is_text(str(value))):
            raise InputError(422, where(position), f"a prediction id must be non-empty text or a whole number, got "
                                                   f"{_kind(value)}", "wrong-type")
        ids.append(str(value))
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise InputError(422, "ids", f"prediction id {repeated!r} occurs more than once in the request; ground truth "
                                     "joins a prediction by its id, so each row needs its own", "duplicate-id")
    return ids


def _times(values: list[Any], where: Callable[[int], str]) -> list[datetime]:
    from tasks.scoring import naive_utc_value

    times = []
    for position, value in enumerate(values):
        stamp = naive_utc_value(value)
        latest = datetime.now(timezone.utc).replace(tzinfo=None) + CLOCK_SKEW
        if stamp is not None and not EARLIEST <= stamp <= latest:
            # A future event time would move the monitoring window (which ends at the newest logged event) into
            # the future, where no traffic is: one request could blind the champion's monitoring.
            raise InputError(422, where(position), f"the event time {stamp.isoformat()} is in the future or before "
                                                   f"{EARLIEST.year}; send when the event happened (UTC, or with "
                                                   "its offset)", "out-of-range")
        if stamp is None:
            raise InputError(422, where(position), f"the event time must be ISO 8601 text such as "
                                                   f"'2013-02-15 05:00:00' (UTC) or with an offset, got {_kind(value)} "
                                                   f"{_preview(value)}", "wrong-type")
        times.append(stamp)
    return times


def columns_to_request(schema: InputSchema, given: dict[str, list[Any]], rows: int,
                       where: Callable[[str, int], str]) -> ParsedRequest:
    """Check columns of equal length against the schema: no missing or unknown column, every value of its type."""
    known = set(schema.names)
    unknown = sorted(set(given) - known - {schema.id_column, schema.timestamp_column})
    if unknown:
        raise InputError(422, unknown[0], f"unknown column(s) {unknown}; the model takes {schema.names} (and "
                                          f"optionally {schema.id_column!r} as the prediction id, "
                                          f"{schema.timestamp_column!r} as the event time)", "extra-column")
    missing = [name for name in schema.names if name not in given]
    if missing:
        raise InputError(422, missing[0], f"missing column(s) {missing}; the model takes {schema.names}",
                         "missing-column")
    columns = {name: _checked_column(name, kind, given[name], lambda i, n=name: where(n, i))
               for name, kind in schema.columns}
    ids = (_ids(given[schema.id_column], lambda i: where(schema.id_column, i))
           if schema.id_column in given and schema.id_column not in known else None)
    times = (_times(given[schema.timestamp_column], lambda i: where(schema.timestamp_column, i))
             if schema.timestamp_column in given else None)
    return ParsedRequest(columns=columns, rows=rows, ids=ids, event_times=times)


def records_to_request(schema: InputSchema, records: list[Any], where: str) -> ParsedRequest:
    """Rows as objects: [{column: value}, ...]."""
    rows = _row_count(len(records))
    names: list[str] = []
    seen: set[str] = set()
    for position, record in enumerate(records):
        for name in _object(record, f"{where}[{position}]"):
            if name not in seen:
                seen.add(name)
                names.append(name)
    given: dict[str, list[Any]] = {name: [] for name in names}
    for position, record in enumerate(records):
        absent = [name for name in names if name not in record]
        if absent:
            raise InputError(422, f"{where}[{position}].{absent[0]}", f"row {position} lacks column(s) {absent} that "
                                                                      "other rows have", "missing-column")
        for name in names:
            given[name].append(record[name])
    return columns_to_request(schema, given, rows, lambda name, i: f"{where}[{i}].{name}")


def parse_native(body: bytes, schema: InputSchema) -> ParsedRequest:
    """`{"rows": [{column: value}, ...], "routing_key": "..."}`: the gateway's own protocol."""
    payload = _object(_loads(body), "body")
    unknown = sorted(set(payload) - {"rows", "routing_key"})
    if unknown:
        raise InputError(422, unknown[0], f"unknown field(s) {unknown}; send {{\"rows\": [...], \"routing_key\": "
                                          "optional}", "extra-field")
    if "rows" not in payload:
        raise InputError(422, "rows", "missing; send {\"rows\": [{column: value, ...}]}", "missing-field")
    parsed = records_to_request(schema, _list(payload["rows"], "rows"), "rows")
    parsed.routing_key = _optional_text(payload, "routing_key")
    return parsed


def parse_mlflow(body: bytes, schema: InputSchema) -> ParsedRequest:
    """MLflow's scoring protocol: `dataframe_split` ({columns, data[, index]}) or `dataframe_records`."""
    payload = _object(_loads(body), "body")
    formats = [key for key in ("dataframe_split", "dataframe_records", "instances", "inputs") if key in payload]
    if len(formats) != 1:
        raise InputError(422, "body", "send exactly one of dataframe_split or dataframe_records (MLflow's scoring "
                                      f"protocol); got {formats or sorted(payload)}", "wrong-format")
    if formats[0] in ("instances", "inputs"):
        raise InputError(422, formats[0], "tensor input is for tensor models; this model takes a table: send "
                                          "dataframe_split or dataframe_records", "wrong-format")
    if formats[0] == "dataframe_records":
        return records_to_request(schema, _list(payload["dataframe_records"], "dataframe_records"),
                                  "dataframe_records")
    split = _object(payload["dataframe_split"], "dataframe_split")
    names = _list(split.get("columns"), "dataframe_split.columns")
    data = _list(split.get("data"), "dataframe_split.data")
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise InputError(422, "dataframe_split.columns", "column names must be distinct strings")
    rows = _row_count(len(data))
    given: dict[str, list[Any]] = {name: [] for name in names}
    for position, row in enumerate(data):
        values = _list(row, f"dataframe_split.data[{position}]")
        if len(values) != len(names):
            raise InputError(422, f"dataframe_split.data[{position}]", f"has {len(values)} values for "
                                                                        f"{len(names)} columns")
        for name, value in zip(names, values):
            given[name].append(value)
    return columns_to_request(schema, given, rows, lambda name, i: f"dataframe_split.data[{i}].{name}")


V2_DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "string": "BYTES",
                "boolean": "BOOL"}


def parse_v2(body: bytes, schema: InputSchema) -> ParsedRequest:
    """Open Inference Protocol v2: one named input tensor per column, shape [rows] or [rows, 1]."""
    payload = _object(_loads(body), "body")
    inputs = _list(payload.get("inputs"), "inputs")
    given: dict[str, list[Any]] = {}
    rows: int | None = None
    for position, tensor in enumerate(inputs):
        tensor = _object(tensor, f"inputs[{position}]")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InputError(422, f"inputs[{position}].name", "every input tensor needs its column's name")
        if name in given:
            raise InputError(422, f"inputs[{position}].name", f"input {name!r} is given twice")
        shape = _list(tensor.get("shape"), f"inputs[{position}].shape")
        if not (1 <= len(shape) <= 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
                and (len(shape) == 1 or shape[1] == 1)):
            raise InputError(422, f"inputs[{position}].shape", f"expected [rows] or [rows, 1] for column {name!r}, "
                                                               f"got {shape}")
        data = _list(tensor.get("data"), f"inputs[{position}].data")
        if data and isinstance(data[0], list):  # nested [[v], [v]] for shape [rows, 1]
            data = [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]
        if len(data) != shape[0]:
            raise InputError(422, f"inputs[{position}].data", f"has {len(data)} values but shape says {shape[0]}")
        if rows is not None and shape[0] != rows:
            raise InputError(422, f"inputs[{position}].shape", f"column {name!r} has {shape[0]} rows, others {rows}")
        rows = shape[0]
        given[name] = data
    parsed = columns_to_request(schema, given, _row_count(rows or 0), lambda name, i: f"inputs[{name}].data[{i}]")
    request_id = _optional_text(payload, "id")
    parameters = payload.get("parameters")
    if parameters is not None:
        parsed.routing_key = _optional_text(_object(parameters, "parameters"), "routing_key")
    if request_id is not None:
        parsed.extra["id"] = request_id
    return parsed
