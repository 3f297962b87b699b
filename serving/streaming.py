"""Streaming scoring: consumers of a model's Redis Stream, scoring micro-batches with the versions the gateway would
use (the same serving table, routing, input checks, prediction log and metrics; serving/answers.py).

Streams of a model `m` (deploy.targets includes `stream`):
- `modelops:m:in`: one entry per record, field `data` = the row as a JSON object (the model's columns, optionally
  the spec's id column as the prediction id and its timestamp column as the event time), optional `routing_key`.
- `modelops:m:out`: one entry per answered record: `record_id` (the input entry's id), `version`, `role`,
  `consumer`, `prediction_id`, `prediction`, `score`.
- `modelops:m:dead`: one entry per record that can never be scored: `record_id`, `reason`, `field`, and the
  original fields as JSON (`fields`).

Guarantee: at-least-once. A record is acknowledged (XACK) only after its result (or dead letter) is in Redis and
its prediction is in this process's prediction spool, which survives `kill -9` (serving.prediction_sink). A consumer
killed mid-batch leaves its records pending in the group: it reads them again when it restarts under its name, and
any other consumer takes them over (XAUTOCLAIM) once idle for deploy.stream.claim_idle_ms. A record answered twice
carries the same record id (and prediction id) both times: duplicates are detectable downstream.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from serving import metrics
from serving.answers import choose_version, log_answer, merge_requests
from serving.inputs import InputError, ParsedRequest, records_to_request
from serving.table import Route, Scores, ServedVersion, ServingTable
from tasks.model_kinds.base import ModelUnavailable
from tasks.routing import SHADOW

log = logging.getLogger("modelops.streaming")

GROUP = "modelops-scorers"
RECORD_FIELDS = {"data", "routing_key"}
WAITING_COUNT_CAP = 1000
# Pauses while the model cannot score (an endpoint model's service is down): short enough that a stop waits little.
MIN_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 0.5, 5.0  # undelivered records counted for the waiting gauge at most (Redis 6.2 has no group lag)


@dataclass(frozen=True)
class Streams:
    inbound: str
    results: str
    dead: str


def streams_of(model: str) -> Streams:
    return Streams(f"modelops:{model}:in", f"modelops:{model}:out", f"modelops:{model}:dead")


def ensure_group(client: Any, model: str) -> None:
    """The model's consumer group, reading the stream from its start (records written before any consumer ran are
    scored too)."""
    import redis

    try:
        client.xgroup_create(streams_of(model).inbound, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def publish(client: Any, model: str, rows: list[dict[str, Any]], routing_keys: list[str] | None = None) -> list[str]:
    """Add records to the model's input stream (what a producer does); their record ids, in order."""
    pipe = client.pipeline(transaction=False)
    inbound = streams_of(model).inbound
    for position, row in enumerate(rows):
        fields = {"data": orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)}
        if routing_keys is not None:
            fields["routing_key"] = routing_keys[position]
        pipe.xadd(inbound, fields)
    return [_text(i) for i in pipe.execute()]


# --- the lag ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lag:
    oldest_ms: float  # age of the oldest record not yet acknowledged (pending or not yet delivered); 0 when none
    waiting: int  # pending records + undelivered ones (counted up to WAITING_COUNT_CAP)


def stream_lag(client: Any, model: str) -> Lag:
    """The consumer group's lag, measured on Redis' clock (record ids carry its milliseconds)."""
    inbound = streams_of(model).inbound
    groups = {_text(g["name"]): g for g in client.xinfo_groups(inbound)} if client.exists(inbound) else {}
    group = groups.get(GROUP)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros / 1000
    if group is None:  # no consumer ever ran: everything in the stream waits
        first = client.xrange(inbound, count=1)
        waiting = len(client.xrange(inbound, count=WAITING_COUNT_CAP)) if first else 0
        return Lag(max(0.0, now_ms - id_ms(_text(first[0][0]))) if first else 0.0, waiting)
    oldest: list[int] = []
    pending = client.xpending(inbound, GROUP)
    if pending["pending"]:
        oldest.append(id_ms(_text(pending["min"])))
    undelivered = client.xrange(inbound, min=f"({_text(group['last-delivered-id'])}", count=WAITING_COUNT_CAP)
    if undelivered:
        oldest.append(id_ms(_text(undelivered[0][0])))
    return Lag(max(0.0, now_ms - min(oldest)) if oldest else 0.0, int(pending["pending"]) + len(undelivered))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- one micro-batch -----------------------------------------------------------------------------------------------
Dead = tuple[str, dict[str, str], str, str]  # record id, its fields, the field at fault, the reason


@dataclass
class Group:
    """Records one version scores in one role, checked against its signature: one request for all of them."""

    served: ServedVersion
    role: str
    record_ids: list[str]
    prediction_ids: list[str]  # the row's id column, else its record id (the same when it is scored again)
    request: ParsedRequest
    scores: Scores | None = None


@dataclass
class Batch:
    """A read micro-batch sorted into who scores what, and what goes to the dead letters."""

    groups: list[Group] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # ids whose entry was deleted before it was read: ack only


def decode(fields: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The record's row and routing key; InputError naming the field when the entry is not a record."""
    unknown = sorted(set(fields) - RECORD_FIELDS)
    if unknown:
        raise InputError(422, unknown[0], f"unknown field(s) {unknown}; a record has `data` (the row as a JSON "
                                          "object) and optionally `routing_key`", "extra-field")
    if "data" not in fields:
        raise InputError(422, "data", "missing; put the row as a JSON object in the field `data`", "missing-field")
    try:
        row = orjson.loads(fields["data"])
    except orjson.JSONDecodeError as exc:
        raise InputError(400, "data", f"malformed JSON: {exc}", "malformed-json") from None
    if not isinstance(row, dict):
        raise InputError(422, "data", f"a JSON object of column: value is expected, got {type(row).__name__}",
                         "wrong-type")
    return row, fields.get("routing_key")


def sort_batch(route: Route, entries: list[tuple[str, dict[str, str] | None]], received: datetime) -> Batch:
    """Route each record as the gateway routes a request (its routing key, else its id, else its record id: a record
    scored again lands on the same version), then check each version's records against its signature."""
    batch = Batch()
    id_column = route.spec.data.id_column
    routed: dict[tuple[str, str], tuple[ServedVersion, str, list[tuple[str, dict[str, Any]]]]] = {}
    fields_of = {}
    for record_id, fields in entries:
        if fields is None:
            batch.gone.append(record_id)
            continue
        fields_of[record_id] = fields
        try:
            row, key = decode(fields)
        except InputError as error:
            batch.dead.append((record_id, fields, error.field, error.problem))
            continue
        served, role = choose_version(route, key or _text(row.get(id_column) or record_id))
        routed.setdefault((served.version, role), (served, role, []))[2].append((record_id, row))
    for served, role, records in routed.values():
        group = check_records(served, role, records, fields_of, batch.dead, received)
        if group is not None:
            batch.groups.append(group)
    return batch


def check_records(served: ServedVersion, role: str, records: list[tuple[str, dict[str, Any]]],
                  fields_of: dict[str, dict[str, str]], dead: list[Dead], received: datetime) -> Group | None:
    """All records checked at once (the common case: all good); when that fails, one by one, and those at fault are
    dead letters naming the field and the problem, as the gateway's 4xx does."""
    try:
        request = records_to_request(served.schema, [row for _, row in records], "data")
        ids = [rid for rid, _ in records]
        return Group(served, role, ids, request.ids or ids, request)
    except InputError:
        pass
    good: list[tuple[str, ParsedRequest]] = []
    for rid, row in records:
        try:
            good.append((rid, records_to_request(served.schema, [row], "data")))
        except InputError as error:
            dead.append((rid, fields_of[rid], error.field, error.problem))
    if not good:
        return None
    return Group(served, role, [rid for rid, _ in good], [p.ids[0] if p.ids else rid for rid, p in good],
                 merge_requests([p for _, p in good], received))


def one_record(group: Group, index: int) -> Group:
    request = group.request
    single = ParsedRequest(columns={name: [values[index]] for name, values in request.columns.items()}, rows=1,
                           ids=[request.ids[index]] if request.ids else None,
                           event_times=[request.event_times[index]] if request.event_times else None)
    return Group(group.served, group.role, [group.record_ids[index]], [group.prediction_ids[index]], single)


def score_group(group: Group, dead: list[Dead], fields_of: dict[str, dict[str, str]],
                received: datetime) -> Group | None:
    """The group scored; when its micro-batch fails, record by record, and a record that fails alone is a dead
    letter with the model's error (it would fail every retry and block the stream)."""
    try:
        group.scores = group.served.score([group.request])[0]
        return group
    except ModelUnavailable:
        raise  # no record is at fault: the caller holds them all
    except Exception:  # noqa: BLE001 - find the record at fault below
        if group.request.rows == 1:
            rid = group.record_ids[0]
            log.exception("%s v%s cannot score record %s", group.served.model, group.served.version, rid)
            dead.append((rid, fields_of[rid], "data", f"the model failed to score this record "
                                                      f"(v{group.served.version}); its log has the error"))
            return None
    scored = [g for g in (score_group(one_record(group, i), dead, fields_of, received)
                          for i in range(group.request.rows)) if g is not None]
    if not scored:
        return None
    return Group(group.served, group.role, [r for g in scored for r in g.record_ids],
                 [p for g in scored for p in g.prediction_ids], merge_requests([g.request for g in scored], received),
                 Scores(_concat([g.scores.scores for g in scored]),  # type: ignore[union-attr]
                        _concat([g.scores.predictions for g in scored])))  # type: ignore[union-attr]


class StreamConsumer:
    """One consumer of a model's group. `step()` reads, scores and acknowledges one micro-batch."""

    def __init__(self, client: Any, table: ServingTable, sink: Any, model: str, consumer: str) -> None:
        self.client, self.table, self.sink, self.model, self.consumer = client, table, sink, model, consumer
        self.streams = streams_of(model)
        self.own_pending = True  # first the records this consumer name had been given and did not acknowledge
        self.claim_cursor = "0-0"
        self.next_claim = 0.0
        self.backoff = 0.0  # seconds paused after the model was last unavailable; 0 once it scores again
        ensure_group(client, model)

    def route(self) -> Route | None:
        """The model's route when a champion serves it; None (nothing is read, records wait) otherwise."""
        if not self.table.ready or self.table.stale:
            return None
        route = self.table.current.routes.get(self.model)
        return route if route is not None and route.champion is not None else None

    def read(self, route: Route) -> list[tuple[str, dict[str, str] | None]]:
        settings = route.spec.deploy.stream
        if self.own_pending:
            entries = self._read_group("0", settings.batch_rows, None)
            if entries:
                return entries
            self.own_pending = False
        now = time.monotonic()
        if now >= self.next_claim:
            claimed = self._claim(settings.claim_idle_ms, settings.batch_rows)
            if claimed:
                return claimed
            self.next_claim = now + settings.claim_idle_ms / 2000
        return self._read_group(">", settings.batch_rows, settings.block_ms)

    def _read_group(self, start: str, count: int, block: int | None) -> list[tuple[str, dict[str, str] | None]]:
        answer = self.client.xreadgroup(GROUP, self.consumer, {self.streams.inbound: start}, count=count, block=block)
        return [(_text(i), _fields(f)) for _, entries in answer or [] for i, f in entries]

    def _claim(self, idle_ms: int, count: int) -> list[tuple[str, dict[str, str] | None]]:
        """Records another consumer was given and has not acknowledged for idle_ms: it died mid-batch."""
        answer = self.client.xautoclaim(self.streams.inbound, GROUP, self.consumer, idle_ms,
                                        start_id=self.claim_cursor, count=count)
        self.claim_cursor = _text(answer[0])
        entries = [(_text(i), _fields(f)) for i, f in answer[1]]
        if entries:
            log.warning("%s: took over %d record(s) left unacknowledged by a consumer", self.consumer, len(entries))
        return entries

    def step(self) -> int:
        """One micro-batch; the number of records acknowledged (0: nothing to do or nothing served)."""
        route = self.route()
        if route is None:
            time.sleep(0.1)
            return 0
        try:
            entries = self.read(route)
        except Exception as exc:
            if "NOGROUP" not in str(exc):
                raise
            ensure_group(self.client, self.model)  # the stream was deleted (and its group with it): start over
            return 0
        return self.handle(route, entries) if entries else 0

    def handle(self, route: Route, entries: list[tuple[str, dict[str, str] | None]]) -> int:
        began = time.perf_counter()
        received = datetime.now(timezone.utc).replace(tzinfo=None)
        batch = sort_batch(route, entries, received)
        fields_of = {rid: f for rid, f in entries if f is not None}
        try:
            answered = [g for g in (score_group(g, batch.dead, fields_of, received) for g in batch.groups)
                        if g is not None]
        except ModelUnavailable as exc:
            self.hold(exc)
            return 0
        self.backoff = 0.0
        latency_ms = (time.perf_counter() - began) * 1000
        pipe = self.client.pipeline(transaction=False)
        for group in answered:
            version, role, scores = group.served.version, group.role, group.scores
            for rid, pid, prediction, score in zip(group.record_ids, group.prediction_ids,
                                                   scores.predictions.tolist(),  # type: ignore[union-attr]
                                                   scores.scores.tolist()):  # type: ignore[union-attr]
                pipe.xadd(self.streams.results, {"record_id": rid, "version": version, "role": role,
                                                 "consumer": self.consumer, "prediction_id": pid,
                                                 "prediction": prediction, "score": score})
        for rid, fields, at, reason in batch.dead:
            pipe.xadd(self.streams.dead, {"record_id": rid, "field": at, "reason": reason,
                                          "fields": orjson.dumps(fields)})
        pipe.execute()
        for group in answered:  # the prediction log: in the spool before the acknowledgement
            log_answer(self.sink, group.served, group.role, group.request, group.prediction_ids,
                       group.scores, received, latency_ms)  # type: ignore[arg-type]
            if group.role == "champion" and route.strategy == "shadow" and route.challenger is not None:
                self.shadow(route.challenger, group.request, group.prediction_ids, received)
        acknowledged = [rid for group in answered for rid in group.record_ids]
        acknowledged += [rid for rid, *_ in batch.dead] + batch.gone
        self.client.xack(self.streams.inbound, GROUP, *acknowledged)
        self._count(acknowledged, batch)
        return len(acknowledged)

    def hold(self, exc: ModelUnavailable) -> None:
        """The model cannot score now (its service is down): nothing of the micro-batch is answered, dead-lettered
        or acknowledged. The records stay pending for this consumer, which reads them again first after a pause
        that doubles up to MAX_BACKOFF_SECONDS; the lag grows meanwhile, and monitoring's stream_lag_ms SLA says
        so."""
        self.backoff = min(MAX_BACKOFF_SECONDS, max(MIN_BACKOFF_SECONDS, self.backoff * 2))
        metrics.ERRORS.labels(self.model, "unavailable").inc()
        log.warning("%s cannot score now, records held, retrying in %.1f s: %s", self.model, self.backoff, exc.what)
        self.own_pending = True
        time.sleep(self.backoff)

    def shadow(self, challenger: ServedVersion, merged: ParsedRequest, ids: list[str], received: datetime) -> None:
        """The challenger scores the champion's records, logged only (never in the results)."""
        began = time.perf_counter()
        try:
            scores = challenger.score([merged])[0]
        except Exception:  # noqa: BLE001 - a failing shadow must not hold back the champion's results
            metrics.ERRORS.labels(challenger.model, "shadow-failed").inc()
            log.exception("shadow scoring by %s v%s failed", challenger.model, challenger.version)
            return
        log_answer(self.sink, challenger, SHADOW, merged, ids, scores, received, (time.perf_counter() - began) * 1000)

    def _count(self, acknowledged: list[str], batch: Batch) -> None:
        now_ms = time.time() * 1000
        answered = len(acknowledged) - len(batch.dead) - len(batch.gone)
        metrics.child(metrics.STREAM_RECORDS, self.model, "answered").inc(answered)
        if batch.dead:
            metrics.child(metrics.STREAM_RECORDS, self.model, "dead-letter").inc(len(batch.dead))
        e2e = metrics.child(metrics.STREAM_E2E, self.model)
        for rid in acknowledged:
            e2e.observe(max(0.0, now_ms - id_ms(rid)) / 1000)

    def update_lag(self) -> Lag:
        lag = stream_lag(self.client, self.model)
        metrics.child(metrics.STREAM_LAG, self.model).set(lag.oldest_ms / 1000)
        metrics.child(metrics.STREAM_WAITING, self.model).set(lag.waiting)
        return lag


def _fields(raw: dict[Any, Any] | None) -> dict[str, str] | None:
    if raw is None:
        return None
    return {_text(k): _text(v) for k, v in raw.items()}


def _concat(arrays: list[Any]) -> Any:
    import numpy as np

    return np.concatenate(arrays)


# --- the process -----------------------------------------------------------------------------------------------------
_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")


def run(model: str, consumer: str, metrics_port: int | None = None, stop: threading.Event | None = None,
        lag_seconds: float = 1.0) -> None:
    """A consumer process' life: until `stop` (SIGTERM, SIGINT) it scores micro-batches; then it closes its
    prediction sink (what it spooled reaches the log). Pending records of a killed predecessor are flushed from
    its spool (recover_spools) and re-read from the group."""
    import redis

    from modelops.errors import ModelOpsError
    from modelops.platform import get_platform
    from modelops.services.redis_server import redis_url
    from serving.prediction_sink import PredictionSink, recover_spools

    if not _NAME.fullmatch(consumer):
        raise ModelOpsError(f"consumer name {consumer!r} cannot name a spool file",
                            "use 1-48 letters, digits, '-' or '_'")
    stop = stop or threading.Event()
    platform = get_platform()
    recover_spools(platform)
    sink = PredictionSink(platform, worker=f"stream-{consumer}")
    sink.start()
    table = ServingTable(platform, target="stream")
    table.start()
    client = redis.Redis.from_url(redis_url(platform.settings), decode_responses=True)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    worker = StreamConsumer(client, table, sink, model, consumer)
    log.info("consumer %s of %s reading %s", consumer, model, worker.streams.inbound)
    next_lag = 0.0
    try:
        while not stop.is_set():
            worker.step()
            if time.monotonic() >= next_lag:
                worker.update_lag()
                next_lag = time.monotonic() + lag_seconds
    finally:
        table.stop()
        sink.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.streaming",
                                     description="One streaming consumer of a model's Redis Stream.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--consumer", required=True, help="its name in the group; restart under the same name "
                                                          "to re-read what it had not acknowledged")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on 127.0.0.1:PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run(args.model, args.consumer, args.metrics_port, stop)


if __name__ == "__main__":
    main()
