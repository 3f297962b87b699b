"""The online gateway: every deployed model behind one ASGI service.

Routes (all model routes need `Authorization: Bearer <token>`, see `modelops tokens`):
- `POST /v1/models/{name}/predict`: the champion answers (or the challenger, by the spec's split);
  `/v1/models/{name}/versions/{v}/predict` and `/v1/models/{name}/aliases/{alias}/predict` name one.
  Body `{"rows": [{column: value}, ...], "routing_key": optional}`; MLflow's bodies are accepted too.
- `POST /v1/models/{name}/invocations`: MLflow's scoring protocol (`dataframe_split` / `dataframe_records`).
- `POST /v2/models/{name}[/versions/{v}]/infer` and the v2 metadata and health routes: the Open Inference Protocol.
- `/healthz`, `/readyz` (ready once every deployed version is loaded or refused), `/metrics`, `/openapi.json`.

Every answer names the version that answered and carries a prediction id per row (the client's own, from the
spec's id column, or one made here); ground truth recorded later by that id joins the prediction.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from modelops.lifecycle import Role
from serving import metrics
from serving.answers import choose_version, log_answer
from serving.batching import MicroBatcher
from serving.inputs import (
    MAX_BODY_BYTES, V2_DATATYPES, InputError, InputSchema, ParsedRequest, parse_mlflow, parse_native, parse_v2,
)
from serving.table import Route, Scores, ServedVersion, ServingTable, Snapshot, UnknownModel
from tasks.model_kinds.endpoint_kind import EndpointError
from tasks.routing import PINNED, SHADOW

log = logging.getLogger("modelops.gateway")

MAX_BATCH_ROWS = 512
UNKNOWN = "(unknown)"  # the metrics label of a model name nobody serves: fuzzed names must not grow the label set
Parser = Callable[[bytes, InputSchema], ParsedRequest]


class PredictionIds:
    """The ids made for rows that came without one: 32 hex digits, 80 random bits drawn once per worker process and
    a counter. uuid4 reads the system's random source for every id, a system call that costs a 1-row request more
    than the rest of its bookkeeping; ids only need to be unique (they are returned, never taken as a secret)."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def make(self, count: int) -> list[str]:
        if self._pid != os.getpid():  # a forked worker draws its own prefix
            self._pid, self._prefix, self._counter = os.getpid(), uuid.uuid4().hex[:20], itertools.count()
        return [f"{self._prefix}{next(self._counter):012x}" for _ in range(count)]


PREDICTION_IDS = PredictionIds()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


class Refusal(Exception):
    """A request answered with a 4xx (or 503 while starting) that is not about the body."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def native_or_mlflow(body: bytes, schema: InputSchema) -> ParsedRequest:
    """`/predict` takes the gateway's own body and MLflow's, so an MLflow client can be pointed at it as it is."""
    head = body[:200]
    if b"dataframe_" in head and b'"rows"' not in head:
        return parse_mlflow(body, schema)
    return parse_native(body, schema)


class Gateway:
    def __init__(self, table: ServingTable, sink: Any) -> None:
        self.table, self.sink = table, sink
        self.batchers: dict[tuple[str, str, str], MicroBatcher[ParsedRequest, Scores]] = {}
        self.background: set[asyncio.Task[None]] = set()

    # --- choosing who answers ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if not self.table.ready:
            raise Refusal(503, "starting", "the gateway is loading the deployed versions; retry in a moment",
                          {"Retry-After": "1"})
        if self.table.stale:
            raise Refusal(503, "stale", "the gateway cannot read the governance store, so it cannot know what may "
                                        "serve or which tokens are revoked; the operator sees why in its log",
                          {"Retry-After": "5"})
        return self.table.current

    def authorize(self, snapshot: Snapshot, request: Request, model: str) -> str:
        from serving.tokens import AccessDenied

        try:
            return snapshot.tokens.authorize(request.headers.get("authorization"), model)
        except AccessDenied as denied:
            raise Refusal(denied.status, f"auth-{denied.reason}", str(denied), denied.headers) from None

    @staticmethod
    def route(snapshot: Snapshot, model: str) -> Route:
        route = snapshot.routes.get(model)
        if route is None:
            raise Refusal(404, "unknown-model", f"no model {model!r} is served online; GET /v1/models lists those "
                                                "your token may call")
        return route

    async def named(self, snapshot: Snapshot, route: Route, model: str, version: str | None,
                    alias: str | None) -> tuple[ServedVersion, str]:
        """(the version that answers, its role) for a version asked for by number or by alias."""
        if version is not None:
            pinned = snapshot.pinned.get((model, version))
            if pinned is None:
                try:
                    pinned = await run_in_threadpool(self.table.pin, model, version)
                except UnknownModel as exc:
                    raise Refusal(404, "unknown-version", exc.what) from None
            return pinned, PINNED
        chosen = {Role.champion.value: route.champion, Role.challenger.value: route.challenger}.get(alias or "")
        if chosen is None:
            raise Refusal(404, "unknown-alias", f"{model} has no version serving as {alias!r} (aliases: champion, "
                                                "challenger)")
        return chosen, str(alias)

    @staticmethod
    def champion(snapshot: Snapshot, route: Route, model: str) -> ServedVersion:
        if route.champion is None:
            why = "; ".join(f"v{v}: {problem}" for (m, v), problem in snapshot.refused.items() if m == model)
            raise Refusal(404, "not-deployed", f"no version of {model} serves online" + (f" ({why})" if why else "")
                          + "; deploy an approved version")
        return route.champion

    split = staticmethod(choose_version)

    # --- scoring ---------------------------------------------------------------------------------------------
    def batcher(self, served: ServedVersion) -> MicroBatcher[ParsedRequest, Scores]:
        key = (served.model, served.version, served.content_hash)
        batcher = self.batchers.get(key)
        if batcher is None:
            self._forget_unserved()
            batcher = self.batchers[key] = MicroBatcher(self._scorer(served), lambda r: r.rows, MAX_BATCH_ROWS,
                                                        off_loop=served.calls_network)
        return batcher

    def _forget_unserved(self) -> None:
        """Drop the batchers of versions that no longer serve (a request still holding one keeps it alive)."""
        snapshot = self.table.current
        live = {(v.model, v.version, v.content_hash) for route in snapshot.routes.values()
                for v in (route.champion, route.challenger) if v is not None}
        live |= {(v.model, v.version, v.content_hash) for v in snapshot.pinned.values()}
        for key in [key for key in self.batchers if key not in live]:
            del self.batchers[key]

    @staticmethod
    def _scorer(served: ServedVersion) -> Callable[[Any], list[Scores]]:
        histogram = metrics.BATCH_ROWS.labels(served.model, served.version)

        def score(requests: Any) -> list[Scores]:
            histogram.observe(sum(r.rows for r in requests))
            return served.score(requests)
        return score

    def log_answer(self, served: ServedVersion, role: str, parsed: ParsedRequest, ids: list[str], scores: Scores,
            received: datetime, latency_ms: float) -> None:
        log_answer(self.sink, served, role, parsed, ids, scores, received, latency_ms)

    def shadow(self, route: Route, parsed: ParsedRequest, ids: list[str], received: datetime) -> None:
        """The challenger scores a copy after the champion answered: its time never adds to the response."""
        challenger = route.challenger
        if challenger is None:
            return

        async def score_copy() -> None:
            began = time.perf_counter()
            try:
                scores = await self.batcher(challenger).submit(parsed)
            except Exception:  # noqa: BLE001 - a failing shadow must not disturb the champion's traffic
                metrics.ERRORS.labels(challenger.model, "shadow-failed").inc()
                log.exception("shadow scoring by %s v%s failed", challenger.model, challenger.version)
                return
            self.log_answer(challenger, SHADOW, parsed, ids, scores, received, (time.perf_counter() - began) * 1000)

        task = asyncio.get_running_loop().create_task(score_copy())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def predict(self, request: Request, protocol: str, parse: Parser,
                      answer: Callable[[ServedVersion, str, list[str], Scores, ParsedRequest], Any]) -> Response:
        began = time.perf_counter()
        model = request.path_params["name"]
        try:
            snapshot = self.snapshot()
            self.authorize(snapshot, request, model)
            route = self.route(snapshot, model)
            body = await read_body(request)
            version, alias = request.path_params.get("version"), request.path_params.get("alias")
            if version is not None or alias is not None:
                served, role = await self.named(snapshot, route, model, version, alias)
                parsed = parse(body, served.schema)
            else:
                parsed = parse(body, self.champion(snapshot, route, model).schema)
                key = request.headers.get("x-routing-key") or parsed.routing_key or (parsed.ids or [None])[0]
                served, role = self.split(route, key)
                if served.schema != route.champion.schema:  # type: ignore[union-attr]
                    parsed = parse(body, served.schema)
            received = datetime.now(timezone.utc).replace(tzinfo=None)
            scores = await self.batcher(served).submit(parsed)
            ids = parsed.ids or PREDICTION_IDS.make(parsed.rows)
            self.log_answer(served, role, parsed, ids, scores, received, (time.perf_counter() - began) * 1000)
            metrics.child(metrics.REQUESTS, model, served.version, role, protocol).inc()
            if role == Role.champion and route.strategy == "shadow":
                self.shadow(route, parsed, ids, received)
            return json_response(answer(served, role, ids, scores, parsed),
                                 headers={"X-Model-Version": served.version, "X-Model-Role": role,
                                          "X-Model-Runtime": served.runtime})
        except Refusal as refusal:
            return self.refused(refusal, model)
        except InputError as error:
            metrics.ERRORS.labels(self.label(model), error.kind).inc()
            return json_response(error.body(), error.status)
        except EndpointError as error:  # an endpoint model's service failed: say so, as a gateway in front of it
            metrics.ERRORS.labels(self.label(model), "endpoint").inc()
            log.warning("%s: its scoring endpoint failed: %s", model, error)
            return json_response({"error": {"kind": "endpoint", "message": str(error)}}, 502)
        except Exception:  # noqa: BLE001 - a bug is a 500, counted and logged, never a crash
            metrics.ERRORS.labels(self.label(model), "internal").inc()
            log.exception("scoring %s failed", model)
            return json_response({"error": {"kind": "internal", "message": "the gateway failed to score this "
                                                                           "request; it is logged"}}, 500)

    def label(self, model: str) -> str:
        return model if model in self.table.current.routes else UNKNOWN

    def refused(self, refusal: Refusal, model: str | None = None) -> Response:
        metrics.ERRORS.labels(self.label(model) if model else UNKNOWN, refusal.kind).inc()
        return json_response({"error": {"kind": refusal.kind, "message": refusal.message}}, refusal.status,
                             refusal.headers)


async def read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise InputError(413, "body", f"the body has {length} bytes, more than the limit of {MAX_BODY_BYTES}",
                         "too-large")
    if length is not None:
        return await request.body()
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked: count as it comes, never buffer past the limit
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InputError(413, "body", f"the body is larger than the limit of {MAX_BODY_BYTES} bytes", "too-large")
        chunks.append(chunk)
    return b"".join(chunks)


# --- answers of each protocol --------------------------------------------------------------------------------

def native_answer(served: ServedVersion, role: str, ids: list[str], scores: Scores, _: ParsedRequest) -> Any:
    return {"model": served.model, "version": served.version, "role": role,
            "predictions": [{"prediction_id": i, "prediction": p, "score": s}
                            for i, p, s in zip(ids, scores.predictions.tolist(), scores.scores.tolist())]}


def mlflow_answer(served: ServedVersion, role: str, ids: list[str], scores: Scores, _: ParsedRequest) -> Any:
    # MLflow's clients read `predictions`; the rest says who answered, as every answer of the gateway does.
    return {"predictions": scores.predictions.tolist(), "scores": scores.scores.tolist(),
            "model_version": served.version, "role": role, "prediction_ids": ids}


def v2_answer(served: ServedVersion, role: str, ids: list[str], scores: Scores, parsed: ParsedRequest) -> Any:
    rows = parsed.rows
    predictions = scores.predictions
    return {"model_name": served.model, "model_version": served.version, "id": parsed.extra.get("id", ids[0]),
            "parameters": {"role": role},
            "outputs": [{"name": "prediction", "shape": [rows], "datatype": "INT64" if predictions.dtype.kind == "i"
                         else "FP64", "data": predictions.tolist()},
                        {"name": "score", "shape": [rows], "datatype": "FP64", "data": scores.scores.tolist()},
                        {"name": "prediction_id", "shape": [rows], "datatype": "BYTES", "data": ids}]}


# --- the application -----------------------------------------------------------------------------------------

def create_app(table: ServingTable | None = None, sink: Any = None) -> Starlette:
    """The ASGI app. Without arguments (uvicorn's factory, one call per worker process) it opens the platform of the
    environment, starts the serving table's refresher and a prediction sink of its own."""
    state: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = state["gateway"] = app.state.gateway = await run_in_threadpool(_open_gateway, table, sink)
        # The worker takes connections only once the deployed versions are loaded: with several workers on one
        # socket, a worker still loading would answer 503 while another already said /readyz.
        await run_in_threadpool(gateway.table.start)
        try:
            yield
        finally:
            gateway.table.stop()
            if gateway.background:
                await asyncio.wait(set(gateway.background), timeout=10)
            gateway.sink.close()  # every acknowledged prediction reaches the log before the process ends

    def gateway() -> Gateway:
        return state["gateway"]

    def scoring(protocol: str, parse: Parser, answer: Any) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await gateway().predict(request, protocol, parse, answer)
        return endpoint

    native = scoring("native", native_or_mlflow, native_answer)
    mlflow = scoring("mlflow", parse_mlflow, mlflow_answer)
    v2 = scoring("v2", parse_v2, v2_answer)
    routes = [
        Path("/healthz", lambda _: json_response({"status": "alive"})),
        Path("/readyz", lambda request: readiness(gateway(), request)),
        Path("/metrics", lambda _: metrics_response()),
        Path("/openapi.json", lambda request: openapi(gateway(), request)),
        Path("/v1/models", lambda request: model_list(gateway(), request)),
        Path("/v1/models/{name}/predict", native, methods=["POST"]),
        Path("/v1/models/{name}/versions/{version}/predict", native, methods=["POST"]),
        Path("/v1/models/{name}/aliases/{alias}/predict", native, methods=["POST"]),
        Path("/v1/models/{name}/invocations", mlflow, methods=["POST"]),
        Path("/v1/models/{name}/versions/{version}/invocations", mlflow, methods=["POST"]),
        Path("/v2", lambda _: json_response({"name": "modelops-gateway", "version": "1", "extensions": []})),
        Path("/v2/health/live", lambda _: json_response({"live": True})),
        Path("/v2/health/ready", lambda request: readiness(gateway(), request, v2=True)),
        Path("/v2/models/{name}", lambda request: v2_metadata(gateway(), request)),
        Path("/v2/models/{name}/versions/{version}", lambda request: v2_metadata(gateway(), request)),
        Path("/v2/models/{name}/ready", lambda request: v2_model_ready(gateway(), request)),
        Path("/v2/models/{name}/infer", v2, methods=["POST"]),
        Path("/v2/models/{name}/versions/{version}/infer", v2, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _open_gateway(table: ServingTable | None, sink: Any) -> Gateway:
    from modelops.platform import get_platform
    from serving.prediction_sink import PredictionSink, recover_spools

    platform = table.platform if table is not None else get_platform()
    if sink is None:
        recover_spools(platform)  # what a killed worker had acknowledged but not yet written
        sink = PredictionSink(platform, worker=f"gateway-{os.getpid()}")
        sink.start()
    return Gateway(table or ServingTable(platform), sink)


def metrics_response() -> Response:
    content, media_type = metrics.exposition()
    return Response(content, media_type=media_type)


def readiness(gateway: Gateway, request: Request, v2: bool = False) -> Response:
    """Ready (200) once the deployed versions are loaded and the store was read lately. Which versions serve, and
    why one is refused, only to a caller with a token, for the models it may call."""
    ready = gateway.table.ready and not gateway.table.stale
    status = 200 if ready else 503
    if v2:
        return json_response({"ready": ready}, status)
    snapshot = gateway.table.current
    if not request.headers.get("authorization"):
        return json_response({"ready": ready}, status)
    allowed = callable_models(snapshot, request)
    serving = {name: route.versions() for name, route in snapshot.routes.items() if name in allowed}
    refused = {f"{model} {'spec' if version == 'spec' else 'v' + version}": why
               for (model, version), why in snapshot.refused.items() if model in allowed}
    return json_response({"ready": ready, "serving": serving, "refused": refused}, status)


def callable_models(snapshot: Snapshot, request: Request) -> set[str]:
    """The served models the request's token may call (none without a valid token)."""
    from serving.tokens import AccessDenied

    allowed = set()
    for name in snapshot.routes if snapshot.tokens is not None else ():
        try:
            snapshot.tokens.authorize(request.headers.get("authorization"), name)
        except AccessDenied:
            continue
        allowed.add(name)
    return allowed


def openapi(gateway: Gateway, request: Request) -> Response:
    """The models of the caller's token (none without one: their inputs are not for everyone to read)."""
    from serving.openapi import document

    snapshot = gateway.table.current
    allowed = callable_models(snapshot, request)
    visible = {name: route for name, route in snapshot.routes.items() if name in allowed}
    return json_response(document(replace(snapshot, routes=visible)))


def model_list(gateway: Gateway, request: Request) -> Response:
    """The models this token may call, and the versions serving them."""
    from serving.tokens import AccessDenied

    try:
        snapshot = gateway.snapshot()
    except Refusal as refusal:
        return gateway.refused(refusal, request.path_params.get("name"))
    models = []
    for name, route in sorted(snapshot.routes.items()):
        try:
            snapshot.tokens.authorize(request.headers.get("authorization"), name)
        except AccessDenied as denied:
            if denied.status == 401:
                return gateway.refused(Refusal(401, f"auth-{denied.reason}", str(denied), denied.headers))
            continue
        served = route.champion or route.challenger
        models.append({"name": name, "strategy": route.strategy, **route.versions(),
                       "inputs": [{"name": n, "type": t} for n, t in served.schema.columns] if served else []})
    return json_response({"models": models})


def _v2_served(gateway: Gateway, request: Request) -> tuple[Snapshot, ServedVersion]:
    snapshot = gateway.snapshot()
    model = request.path_params["name"]
    gateway.authorize(snapshot, request, model)
    route = gateway.route(snapshot, model)
    version = request.path_params.get("version")
    served = snapshot.pinned.get((model, version)) if version else route.champion
    if version and served is None and route.champion and route.champion.version == version:
        served = route.champion
    if served is None:
        raise Refusal(404, "not-deployed", f"{model}" + (f" v{version}" if version else "") + " is not loaded; "
                                           "its infer route loads an eligible version on first use")
    return snapshot, served


def v2_metadata(gateway: Gateway, request: Request) -> Response:
    try:
        _, served = _v2_served(gateway, request)
    except Refusal as refusal:
        return gateway.refused(refusal, request.path_params.get("name"))
    return json_response({"name": served.model, "versions": [served.version], "platform": "modelops",
                          "inputs": [{"name": n, "datatype": V2_DATATYPES.get(t, "BYTES"), "shape": [-1]}
                                     for n, t in served.schema.columns],
                          "outputs": [{"name": "prediction", "datatype": "FP64", "shape": [-1]},
                                      {"name": "score", "datatype": "FP64", "shape": [-1]},
                                      {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]}]})


def v2_model_ready(gateway: Gateway, request: Request) -> Response:
    try:
        _v2_served(gateway, request)
    except Refusal as refusal:
        if refusal.status == 404:
            return json_response({"name": request.path_params["name"], "ready": False}, 404)
        return gateway.refused(refusal, request.path_params.get("name"))
    return json_response({"name": request.path_params["name"], "ready": True})
