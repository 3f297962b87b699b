"""register: train a model through its spec on a window (or take a model built elsewhere) and register it."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import TAG_FINGERPRINT, TAG_STATE
from modelops.errors import CatalogError
from modelops.flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, Window, load_spec
from modelops.tasks.audit import record_stage
from modelops.tasks.training import prepare_training_task, train_and_log_task


class Registered(BaseModel):
    model: str
    version: str
    created: bool
    source: str
    train_start: date | None = None
    train_end: date | None = None


def _version_tags(spec: LifecycleSpec, extra: dict[str, str]) -> dict[str, str]:
    return {"owner": spec.owner, "risk_tier": spec.risk_tier.value, TAG_STATE: "registered", **extra}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


@flow(name="register", log_prints=True)
def register(model: ModelName, train_start: date | None = None, train_end: date | None = None,
             model_uri: str | None = None, parent_version: Version | None = None, chain: bool = True) -> Registered:
    """Train on [train_start, train_end) (default: the spec's training window) and register a new version, or
    register `model_uri`, a model logged elsewhere. Registering the same inputs again returns the live version.
    With `chain`, the registered event lets the deployment triggers take the version through validate, approve
    and deploy; a retrain's challenger is registered without it."""
    spec = load_spec(model)
    platform = get_platform()
    catalog = platform.catalog
    catalog.ensure_registered_model(spec.name, spec.description,
                                    {"owner": spec.owner, "risk_tier": spec.risk_tier.value, "task": spec.task})
    chain_tag = {events.CHAIN_TAG: "continue" if chain else "stop"}
    if model_uri:
        return _register_external(spec, model_uri, parent_version, chain_tag)

    window = Window(start=train_start or spec.training.window.start, end=train_end or spec.training.window.end)
    frame, inputs = prepare_training_task(spec, window)
    existing = catalog.find_version(spec.name, inputs.fingerprint)
    if existing is not None:
        print(f"{spec.name}: v{existing.version} was already trained on exactly these inputs; not registering again")
        _complete_record(spec, existing.version, existing.source, existing.run_id, window, inputs.data_hash,
                         inputs.code_version, existing.tags)
        return Registered(model=spec.name, version=existing.version, created=False, source="trained",
                          train_start=window.start, train_end=window.end)
    logged = train_and_log_task(spec, frame, inputs, catalog)
    tags = _version_tags(spec, {
        "data_hash": inputs.data_hash, "code_version": inputs.code_version, "train_start": str(window.start),
        "train_end": str(window.end), "training_rows": str(inputs.rows), TAG_FINGERPRINT: inputs.fingerprint,
        "source": "trained", "parent_version": parent_version or "", **chain_tag,
    })
    version = catalog.register(spec.name, logged.model_uri, logged.run_id, tags)
    _complete_record(spec, version, logged.model_uri, logged.run_id, window, inputs.data_hash, inputs.code_version,
                     tags, rows=inputs.rows)
    print(f"{spec.name}: registered v{version} trained on {inputs.rows} rows of {window.start}..{window.end}")
    return Registered(model=spec.name, version=version, created=True, source="trained",
                      train_start=window.start, train_end=window.end)


def _complete_record(spec: LifecycleSpec, version: str, model_uri: str, run_id: str | None, window: Window,
                     data_hash: str, code_version: str, tags: dict[str, str], rows: int | None = None) -> None:
    """Lineage and the audit entry of a trained version; safe to repeat, so that a run which stopped after the
    registry write completes the record when it is run again."""
    platform = get_platform()
    parent = tags.get("parent_version") or None
    platform.store.record_lineage(model=spec.name, version=version, source="trained", model_uri=model_uri,
                                  run_id=run_id, parent_version=parent, train_start=_midnight(window.start),
                                  train_end=_midnight(window.end), data_hash=data_hash, code_version=code_version)
    if platform.store.has_audit(spec.name, "register", version):
        return
    record_stage(stage="register", action="train-and-register", model=spec.name, version=version, outcome="registered",
                 evidence={"run_id": run_id, "model_uri": model_uri, "train_window": [window.start, window.end],
                           "rows": rows or tags.get("training_rows"), "data_hash": data_hash,
                           "code_version": code_version, "parent_version": parent},
                 event=events.REGISTERED, labels=events.chain_labels(tags))


def _register_external(spec: LifecycleSpec, model_uri: str, parent_version: str | None,
                       chain_tag: dict[str, str]) -> Registered:
    """A model built with any tool and logged to MLflow: registered as is, scanned and validated like any other."""
    import hashlib

    platform = get_platform()
    fingerprint = hashlib.sha256(f"external:{model_uri}".encode()).hexdigest()[:32]
    existing = platform.catalog.find_version(spec.name, fingerprint)
    if existing is not None:
        return Registered(model=spec.name, version=existing.version, created=False, source="external")
    match = re.match(r"^runs:/([0-9a-f]{32})/", model_uri)
    run_id = match.group(1) if match else None
    try:
        version = platform.catalog.register(spec.name, model_uri, run_id, _version_tags(spec, {
            TAG_FINGERPRINT: fingerprint, "source": "external", "parent_version": parent_version or "",
            **chain_tag}))
    except Exception as exc:  # noqa: BLE001 - MLflow raises MlflowException or OSError for a bad URI
        raise CatalogError(f"cannot register {model_uri!r} as {spec.name}: {exc}",
                           "pass a model URI MLflow can resolve (runs:/<run_id>/<path> or models:/<id>)") from exc
    platform.store.record_lineage(model=spec.name, version=version, source="external", model_uri=model_uri,
                                  run_id=run_id, parent_version=parent_version, train_start=None, train_end=None,
                                  data_hash=None, code_version=None)
    record_stage(stage="register", action="register-external", model=spec.name, version=version,
                 outcome="registered", evidence={"model_uri": model_uri, "run_id": run_id}, event=events.REGISTERED,
                 labels=events.chain_labels(chain_tag))
    return Registered(model=spec.name, version=version, created=True, source="external")
