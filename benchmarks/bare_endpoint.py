"""The obvious hand-written endpoint the gateway is measured against: Starlette, JSON in, predict_proba, JSON out.

Served by uvicorn exactly as the benchmark serves it:
    MODELOPS_HOME=<state dir> python -m uvicorn benchmarks.bare_endpoint:create_app --factory --workers N
Each worker loads flight-delay's champion once, at startup, through the platform's checked loader (pinned bytes,
scanned types), so it scores with the very estimator the gateway serves. Per request it does nothing more than a
careful person would write by hand: parse the body, build a DataFrame with the signature's columns and dtypes, call
predict_proba, answer with a score and a 0/1 prediction per row. No auth, no validation, no logging, no batching.
"""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = "flight-delay"
PATH = f"/v1/models/{MODEL}/predict"  # the gateway's path, so both get the same requests
# MLflow signature types -> pandas dtypes (those an MLflow sklearn signature can name for a column).
DTYPES = {"long": "int64", "integer": "int32", "double": "float64", "float": "float32", "string": "object",
          "boolean": "bool"}


def load_champion(model: str) -> tuple[Any, dict[str, str], float]:
    """(estimator, {column: pandas dtype}, decision threshold) of the model's champion in MODELOPS_HOME."""
    from modelops.catalog import CHAMPION
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.integrity import load_verified_model

    platform = get_platform()
    spec = load_spec(model)
    version = platform.catalog.version_for_alias(model, CHAMPION.value)
    if version is None:
        raise SystemExit(f"{model} has no champion in {platform.settings.home}: onboard it first "
                         "(modelops.demo.onboard)")
    verified = load_verified_model(platform, spec, version, "benchmark")
    return verified.model.estimator, {name: DTYPES[kind] for name, kind in verified.columns}, \
        spec.deploy.decision_threshold


def create_app() -> Starlette:
    """The app of one uvicorn worker (uvicorn --factory calls this in each worker process)."""
    estimator, dtypes, threshold = load_champion(MODEL)
    columns = list(dtypes)

    # async and inline: scoring is CPU-bound, a thread hop would only add latency; one worker scores one request at
    # a time, as the obvious endpoint does.
    async def predict(request: Request) -> Response:
        rows = orjson.loads(await request.body())["rows"]
        frame = pd.DataFrame.from_records(rows, columns=columns).astype(dtypes)
        scores = estimator.predict_proba(frame)[:, -1].tolist()
        body = {"predictions": [{"prediction": int(score >= threshold), "score": score} for score in scores]}
        return Response(orjson.dumps(body), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"ready", media_type="text/plain")

    return Starlette(routes=[Route(PATH, predict, methods=["POST"]), Route("/readyz", ready)])
