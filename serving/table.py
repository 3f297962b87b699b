"""What the gateway serves: read from the governance store every fraction of a second, never from MLflow's aliases.

A version serves only while the store deploys it and it is approved, passed the security scan and is not retired;
its files are checked against their registration pin and scanned again as it is loaded (tasks.integrity). The table
is an immutable snapshot swapped in one assignment: a request in flight keeps the version it started with, and a
deploy, promote, rollback or retire takes effect at the next refresh without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from modelops.errors import ModelOpsError
from modelops.lifecycle import ApprovalStatus, GateStatus, Role
from modelops.platform import Platform
from modelops.spec import LifecycleSpec, parse_spec
from serving.inputs import InputSchema, ParsedRequest
from tasks.scoring import decide, predict_scores

log = logging.getLogger("modelops.gateway")

DTYPES = {"double": "float64", "float": "float64", "long": "int64", "integer": "int64", "string": object,
          "boolean": "bool"}
RETRY_REFUSED_SECONDS = 60.0  # a version that failed to load (tampered, unsafe) is tried again this much later
# One model load at a time per process: loading parses Python source (CPython 3.11's ast module), whose recursion
# bookkeeping is shared between threads ("AST constructor recursion depth mismatch" when two serving tables of one
# process, e.g. two stream consumers in threads, loaded at once). Loads are rare; scoring is not serialized.
_LOADING = threading.Lock()
STALE_AFTER_SECONDS = 30.0  # a snapshot older than this is not answered from (see ServingTable.stale)
MAX_PINS = 8  # versions asked for by number kept loaded per worker: each costs a model's memory


@dataclass(frozen=True)
class Scores:
    scores: np.ndarray
    predictions: np.ndarray


@dataclass(frozen=True)
class ServedVersion:
    """A loaded version, ready to score a micro-batch of checked requests."""

    model: str
    version: str
    content_hash: str
    predictor: Any  # tasks.integrity.VerifiedModel: its bytes are the pinned ones and passed the scan
    schema: InputSchema
    task: str
    decision_threshold: float
    # tasks.onnx_export.OnnxScorer when validation recorded an equal ONNX conversion and its file is the recorded one
    onnx: Any = None

    @property
    def runtime(self) -> str:
        if self.onnx is not None:
            return "onnxruntime"
        if self.calls_network:
            return "endpoint"
        # "worker": a scoring worker in the version's own environment (tasks.worker_client)
        return str(getattr(getattr(self.predictor, "model", None), "runtime", "native"))

    @property
    def calls_network(self) -> bool:
        """The model waits on another service (an endpoint model): score it off the event loop."""
        return bool(getattr(getattr(self.predictor, "model", None), "calls_network", False))

    def score(self, requests: Sequence[ParsedRequest]) -> list[Scores]:
        if self.onnx is not None:
            # Columns straight to onnxruntime: pandas would cost more than the model on a small batch.
            columns = requests[0].columns if len(requests) == 1 else {
                name: [v for r in requests for v in r.columns[name]] for name, _ in self.schema.columns}
            scores = self.onnx.scores(columns)
        else:
            frame = pd.DataFrame({name: np.asarray([v for r in requests for v in r.columns[name]],
                                                   dtype=DTYPES[kind]) for name, kind in self.schema.columns})
            scores = predict_scores(self.predictor, frame, self.task)
        predictions = decide(scores, self.task, self.decision_threshold)
        out, start = [], 0
        for request in requests:
            end = start + request.rows
            out.append(Scores(scores[start:end], predictions[start:end]))
            start = end
        return out


@dataclass(frozen=True)
class Route:
    """How a model's champion traffic is served: the champion, and the challenger splitting or shadowing it."""

    spec: LifecycleSpec
    champion: ServedVersion | None
    challenger: ServedVersion | None

    @property
    def strategy(self) -> str:
        return self.spec.deploy.strategy

    def versions(self) -> dict[str, str | None]:
        return {"champion": self.champion.version if self.champion else None,
                "challenger": self.challenger.version if self.challenger else None}


@dataclass(frozen=True)
class Snapshot:
    routes: dict[str, Route] = field(default_factory=dict)
    pinned: dict[tuple[str, str], ServedVersion] = field(default_factory=dict)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # deployed but not served, and why
    tokens: Any = None  # serving.tokens.TokenTable
    loaded_at: float = 0.0


def _close_all(versions: Any) -> None:
    """Stop what versions no longer served hold outside the process (a worker of their own environment)."""
    for served in versions:
        close = getattr(served.predictor, "close", None)
        if close is not None:
            close()


class UnknownModel(ModelOpsError):
    pass


def eligibility_problem(approval: str | None, security: str | None, retired: bool) -> str | None:
    """Why a version may not serve, whatever deploys it; None when it may."""
    if retired:
        return "it is retired"
    if approval != ApprovalStatus.approved:
        return f"it is not approved (approval: {approval or 'none'})"
    if security != GateStatus.passed:
        return f"it has not passed the security scan (security scan: {security or 'not run'})"
    return None


class ServingTable:
    """The snapshot, refreshed in a background thread; `current` is read by every request without a lock."""

    def __init__(self, platform: Platform, refresh_seconds: float = 0.5, target: str = "online") -> None:
        self.platform = platform
        self.target = target  # the spec's deploy target served: online (the gateway) or stream (its consumers)
        self.refresh_seconds = refresh_seconds
        self.current = Snapshot()
        self.ready = False
        self._loaded: dict[tuple[str, str, str], ServedVersion] = {}
        self._failed: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._wanted_pins: set[tuple[str, str]] = set()
        self._specs: dict[str, LifecycleSpec] = {}
        self._lock = threading.Lock()  # one refresh (or pinned load) at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="serving-table", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            _close_all(self._loaded.values())  # scoring workers of versions in their own environments stop too
            self._loaded = {}

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a store hiccup must not stop serving what is loaded
                log.exception("refreshing the serving table failed; serving the previous snapshot")

    # --- refresh ---------------------------------------------------------------------------------------------
    def refresh(self) -> Snapshot:
        """One pass: tokens, specs, deployments, loads. A spec that does not parse keeps its model's last good spec
        (and is reported); a version that fails to load is refused and tried again later; a store that cannot be
        read leaves the snapshot to age until `stale` refuses requests."""
        from serving.tokens import TokenTable

        with self._lock:
            tokens = TokenTable.load(self.platform.store)  # first: a revocation must not wait for model loads
            self.current = replace(self.current, tokens=tokens)
            specs, broken = self._specs_now()
            rows = self.platform.store.serving_snapshot()
            refused: dict[tuple[str, str], str] = {(model, "spec"): problem for model, problem in broken.items()}
            served: dict[tuple[str, str], ServedVersion] = {}
            for row in rows:
                spec = specs.get(row.model)
                if spec is None or self.target not in spec.deploy.targets:
                    continue
                problem = eligibility_problem(row.approval, row.security, row.retired)
                loaded = None if problem else self._load(spec, row.version, row.content_hash or "")
                if isinstance(loaded, str):
                    problem = loaded
                if problem:
                    refused[(row.model, row.version)] = problem
                else:
                    served[(row.model, row.role)] = loaded  # type: ignore[assignment]
            routes = {name: Route(spec, served.get((name, Role.champion)),
                                  served.get((name, Role.challenger)) if spec.deploy.strategy != "champion" else None)
                      for name, spec in specs.items() if self.target in spec.deploy.targets}
            snapshot = Snapshot(routes=routes, pinned=self._pins(specs), refused=refused, tokens=tokens,
                                loaded_at=time.monotonic())
            self.current = snapshot
            in_use = {(v.model, v.version, v.content_hash) for v in [*served.values(), *snapshot.pinned.values()]}
            _close_all(value for key, value in self._loaded.items() if key not in in_use)
            self._loaded = {key: value for key, value in self._loaded.items() if key in in_use}
            self.ready = True
            return snapshot

    @property
    def stale(self) -> bool:
        """The store has not been read for too long: revocations and retirements may be missed, so the gateway
        refuses to answer rather than serve on what it knew (fail closed)."""
        return self.ready and time.monotonic() - self.current.loaded_at > STALE_AFTER_SECONDS

    def _specs_now(self) -> tuple[dict[str, LifecycleSpec], dict[str, str]]:
        """Each spec file parsed on its own: one broken file must not freeze every other model's view."""
        folder = self.platform.settings.config_dir / "models"
        broken: dict[str, str] = {}
        for path in sorted(folder.glob("*.yaml")):
            try:
                spec = parse_spec(path)
            except Exception as exc:  # noqa: BLE001 - a broken file is reported, the others still serve
                broken[path.stem] = f"spec {path.name} does not parse; serving its last good version: {exc}"
                continue
            self._specs[spec.name] = spec
        present = {path.stem for path in folder.glob("*.yaml")}
        for name in [name for name in self._specs if name not in present]:
            del self._specs[name]  # a spec file removed: the model is no longer served online
        return dict(self._specs), broken

    def _load(self, spec: LifecycleSpec, version: str, content_hash: str) -> ServedVersion | str:
        """The loaded version, or why it cannot serve. Loads once per content; a failure is retried later."""
        key = (spec.name, version, content_hash)
        if key in self._loaded:
            return self._loaded[key]
        failed = self._failed.get(key)
        if failed and time.monotonic() - failed[0] < RETRY_REFUSED_SECONDS:
            return failed[1]
        from tasks.integrity import load_verified_model

        try:
            with _LOADING:
                model = load_verified_model(self.platform, spec, version, "online serving")
        except Exception as exc:  # noqa: BLE001 - MLflow unreachable, artifact gone: refused and tried again later
            self._failed[key] = (time.monotonic(), str(exc))
            log.warning("%s v%s cannot serve online: %s", spec.name, version, exc)
            return str(exc)
        self._failed.pop(key, None)
        served = ServedVersion(model=spec.name, version=version, content_hash=content_hash, predictor=model,
                               schema=InputSchema(tuple(model.columns), spec.data.id_column,
                                                  spec.data.timestamp_column),
                               task=spec.task, decision_threshold=spec.deploy.decision_threshold,
                               onnx=self._onnx_loaded_alone(spec, version, model.columns))
        self._loaded[key] = served
        log.info("%s v%s loaded for online serving (%s)", spec.name, version, served.runtime)
        return served

    def _onnx_loaded_alone(self, spec: LifecycleSpec, version: str, columns: list[tuple[str, str]]) -> Any:
        with _LOADING:
            return self._onnx(spec, version, columns)

    def _onnx(self, spec: LifecycleSpec, version: str, columns: list[tuple[str, str]]) -> Any:
        """The ONNX scorer validation recorded for the version, verified; None scores natively."""
        from tasks.onnx_export import load_verified_onnx

        governed = self.platform.store.governed_version(spec.name, version)
        try:
            return load_verified_onnx(self.platform, spec, governed, columns, "online serving") if governed else None
        except Exception:  # noqa: BLE001 - onnxruntime refusing the file must not stop the native model serving
            log.exception("%s v%s: the ONNX model cannot be loaded; scoring natively", spec.name, version)
            return None

    def _pins(self, specs: dict[str, LifecycleSpec]) -> dict[tuple[str, str], ServedVersion]:
        """Versions asked for by number: kept while still eligible, loaded on first request."""
        pins: dict[tuple[str, str], ServedVersion] = {}
        for model, version in sorted(self._wanted_pins):
            spec = specs.get(model)
            loaded = self._eligible_load(spec, version) if spec is not None else None
            if isinstance(loaded, ServedVersion):
                pins[(model, version)] = loaded
            else:
                self._wanted_pins.discard((model, version))
        return pins

    def _eligible_load(self, spec: LifecycleSpec, version: str) -> ServedVersion | str:
        governed = self.platform.store.governed_version(spec.name, version)
        if governed is None:
            return f"{spec.name} has no version {version}"
        problem = eligibility_problem(self.platform.store.approval_status(spec.name, version),
                                      governed.security_status, governed.retired)
        return problem or self._load(spec, version, governed.content_hash)

    def pin(self, model: str, version: str) -> ServedVersion:
        """A version named by the caller (blocking: run it off the event loop). Raises UnknownModel with the reason
        when it may not serve."""
        if (model, version) in self.current.pinned:
            return self.current.pinned[(model, version)]
        with self._lock:
            snapshot = self.current  # read under the lock: a refresh that ran meanwhile is not undone
            if (model, version) in snapshot.pinned:
                return snapshot.pinned[(model, version)]
            route = snapshot.routes.get(model)
            if route is None:
                raise UnknownModel(f"model {model!r} is not served online", "see GET /v1/models for the models "
                                                                           "served")
            if len(self._wanted_pins) >= MAX_PINS:
                raise UnknownModel(f"{MAX_PINS} versions are already loaded by number in this gateway worker",
                                   "call the champion or an alias, or ask the operator to restart the gateway")
            loaded = self._eligible_load(route.spec, version)
            if isinstance(loaded, str):
                raise UnknownModel(f"{model} v{version} cannot serve: {loaded}",
                                   "call the champion, or a version that is approved and not retired")
            self._wanted_pins.add((model, version))
            self.current = replace(snapshot, pinned={**snapshot.pinned, (model, version): loaded})
            return loaded
