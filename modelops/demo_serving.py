"""The demo's last act: a model not built with scikit-learn (flight-delay-lgbm, a LightGBM booster) served the two
other ways a consuming application calls models. The gateway and a stream consumer are started as `modelops up`
starts them (processes with their own logs), real flights go through each, and what they logged is read back from
the prediction log, which is what monitoring will judge."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from modelops.errors import ModelOpsError
from modelops.platform import Platform
from modelops.spec import LifecycleSpec

DEMO_CLIENT = "demo-app"
ONLINE_ROWS = 200
STREAM_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Served:
    online_rows: int
    online_version: str
    online_mean_score: float
    online_ms: float  # one request of ONLINE_ROWS rows, client side
    stream_records: int
    stream_answered: int
    stream_dead: int
    stream_seconds: float  # publish of the first record to the last answer
    logged: dict[str, int]  # prediction log rows by source kind (online, stream)


def real_rows(platform: Platform, spec: LifecycleSpec, day: date) -> list[dict[str, Any]]:
    """One day of real flights as a client would send them: the model's inputs and the flight's id, JSON-ready."""
    from modelops.demo import write_traffic

    batch, _ = write_traffic(platform, spec, day, day + timedelta(days=1))
    frame = pd.read_parquet(batch)[[spec.data.id_column, *spec.data.features.all]]
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _logged_by_source(platform: Platform, model: str) -> dict[str, int]:
    counts = {"online": 0, "stream": 0}
    for batch in platform.store.prediction_batches(model):
        if batch.source.startswith("online:stream-"):
            counts["stream"] += batch.rows
        elif batch.source.startswith("online:"):
            counts["online"] += batch.rows
    return counts


def _call_gateway(url: str, token: str, model: str, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
    import httpx
    import orjson

    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/models/{model}/predict", content=orjson.dumps({"rows": rows}),
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                          timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise ModelOpsError(f"the gateway answered {response.status_code}: {response.text[:300]}",
                            "read its log under the state directory's logs/demo-gateway.log")
    return response.json(), elapsed


def _await_answers(client: Any, model: str, expected: int, deadline: float) -> tuple[int, int]:
    from serving.streaming import streams_of

    streams = streams_of(model)
    while True:
        answered, dead = client.xlen(streams.results), client.xlen(streams.dead)
        if answered + dead >= expected:
            return answered, dead
        if time.monotonic() > deadline:
            raise ModelOpsError(f"the stream consumer of {model} answered {answered + dead} of {expected} records "
                                f"within {STREAM_WAIT_SECONDS:.0f} s",
                                f"read its log under the state directory's logs/stream-{model}-1.log")
        time.sleep(0.1)


def serve_online_and_on_a_stream(platform: Platform, spec: LifecycleSpec, day: date) -> Served:
    """Start the gateway and the stream consumers (embedded Redis), score a day of real flights through each, stop
    them (their prediction sinks flush on SIGTERM) and count what reached the prediction log. The demo's API token
    is revoked at the end: no live credential is left behind by a demo."""
    import redis

    from modelops.services.redis_server import redis_url
    from modelops.services.stack import free_port, service_env, start_gateway, start_streaming, stop_services
    from serving.streaming import publish

    if "stream" not in spec.deploy.targets or "online" not in spec.deploy.targets:
        raise ModelOpsError(f"{spec.name} is not deployed online and on a stream (deploy.targets "
                            f"{spec.deploy.targets})", "add online and stream to its deploy.targets")
    from serving.tokens import issue_token, revoke_token

    rows = real_rows(platform, spec, day)
    token_id, token = issue_token(platform, DEMO_CLIENT, [spec.name])
    env, logs = {**service_env(platform.settings), "OMP_NUM_THREADS": "1"}, platform.settings.home / "logs"
    services = []
    try:
        services.append(start_gateway(env, logs / "demo-gateway.log", free_port(), workers=1))
        answer, online_ms = _call_gateway(services[0].url, token, spec.name, rows[:ONLINE_ROWS])
        services += start_streaming(platform.settings, env, logs)
        client = redis.Redis.from_url(redis_url(platform.settings), decode_responses=True)
        started = time.monotonic()
        publish(client, spec.name, rows)
        answered, dead = _await_answers(client, spec.name, len(rows), started + STREAM_WAIT_SECONDS)
        stream_seconds = time.monotonic() - started
    finally:
        stop_services(services)
        revoke_token(platform, token_id)
    scores = [p["score"] for p in answer["predictions"]]
    return Served(len(scores), str(answer["version"]), sum(scores) / len(scores), online_ms, len(rows), answered,
                  dead, stream_seconds, _logged_by_source(platform, spec.name))
