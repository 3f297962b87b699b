"""What the gateway and the streaming consumers share once a model's route is known: which version answers a key,
and the prediction log row and metrics of an answer. One scoring path for online and streaming traffic."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Sequence

from modelops.lifecycle import Role
from serving import metrics
from serving.inputs import ParsedRequest
from serving.table import Route, Scores, ServedVersion
from tasks.routing import routes_to_challenger


def choose_version(route: Route, key: str | None) -> tuple[ServedVersion, str]:
    """The champion, or the challenger for its share of keys (without a key the request is routed at random)."""
    if (route.strategy == "champion_challenger" and route.challenger is not None
            and routes_to_challenger(key or uuid.uuid4().hex, route.spec.deploy.challenger_traffic_share)):
        return route.challenger, Role.challenger.value
    return route.champion, Role.champion.value  # type: ignore[return-value]


def log_answer(sink: Any, served: ServedVersion, role: str, parsed: ParsedRequest, ids: list[str], scores: Scores,
               received: datetime, latency_ms: float) -> None:
    """The prediction log rows of an answered request (or micro-batch): the same log batch scoring writes. When
    this returns the rows survive the process being killed (serving.prediction_sink)."""
    times = parsed.event_times or [received] * parsed.rows
    sink.append(served.model, served.version, role, {
        "prediction_id": ids, "event_time": times, "scored_at": [received] * parsed.rows, **parsed.columns,
        "prediction": scores.predictions.tolist(), "score": scores.scores.tolist(),
        "latency_ms": [latency_ms] * parsed.rows})
    metrics.child(metrics.ROWS, served.model, served.version, role).inc(parsed.rows)
    metrics.child(metrics.LATENCY, served.model, served.version, role).observe(latency_ms / 1000)


def merge_requests(requests: Sequence[ParsedRequest], received: datetime) -> ParsedRequest:
    """Checked requests of one schema as one: a micro-batch logged as one line (a request without event times
    takes the time it was received)."""
    if len(requests) == 1:
        return requests[0]
    names = list(requests[0].columns)
    columns = {name: [v for r in requests for v in r.columns[name]] for name in names}
    times = None
    if any(r.event_times for r in requests):
        times = [t for r in requests for t in (r.event_times or [received] * r.rows)]
    ids = [i for r in requests for i in r.ids] if all(r.ids for r in requests) else None
    return ParsedRequest(columns=columns, rows=sum(r.rows for r in requests), ids=ids, event_times=times)
