"""register: train a model through its spec on a window (or take a model built elsewhere) and register it."""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from datetime import date, datetime, time, timezone
from typing import Iterator

from prefect import flow
from pydantic import BaseModel

from modelops.lineage_events import STAGE_HOOKS
from modelops import events
from modelops.catalog import TAG_FINGERPRINT, TAG_STATE
from modelops.errors import CatalogError, ModelOpsError
from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lifecycle import Stage, VersionState
from modelops.platform import SERVICE_ACTOR, Platform, current_actor, get_platform
from modelops.spec import LifecycleSpec, Window, load_spec
from tasks.registration import (
    Registration, claim_or_wait, ensure_registered_model_task, pin_and_record_task, register_in_catalog_task,
)
from tasks.progress import Tracker, tracked
from tasks.training import prepare_training_task, train_and_log_task


class Registered(BaseModel):
    model: str
    version: str
    created: bool
    source: str
    train_start: date | None = None
    train_end: date | None = None


def _version_tags(spec: LifecycleSpec, extra: dict[str, str]) -> dict[str, str]:
    return {"owner": spec.owner, "risk_tier": spec.risk_tier.value, TAG_STATE: VersionState.registered, **extra}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


@flow(name="register", log_prints=True, **STAGE_HOOKS)
def register(model: ModelName, train_start: date | None = None, train_end: date | None = None,
             model_uri: str | None = None, parent_version: Version | None = None, chain: bool = True) -> Registered:
    """Train on [train_start, train_end) (default: the spec's training window) and register a new version, or
    register `model_uri`, a model logged elsewhere. Registering the same inputs again (or concurrently) returns
    the live version. With `chain`, the registered event lets the deployment triggers take the version through
    validate, approve and deploy; a retrain's challenger is registered without it."""
    handed, result = hand_over(Stage.register, dict(model=model, train_start=train_start, train_end=train_end,
                               model_uri=model_uri, parent_version=parent_version, chain=chain))
    return result if handed else standard_register(load_spec(model), train_start, train_end, model_uri,
                                                   parent_version, chain)


def standard_register(spec: LifecycleSpec, train_start: date | None = None, train_end: date | None = None,
                      model_uri: str | None = None, parent_version: str | None = None,
                      chain: bool = True) -> Registered:
    platform = get_platform()
    # Both entry points must import before anything is written: a broken one leaves no empty registered model.
    spec.entry("loader")
    if not model_uri and spec.endpoint is None:  # an endpoint model has no trainer: its owner trains it
        spec.entry("trainer")
    ensure_registered_model_task(platform, spec)
    chain_value = "continue" if chain else "stop"
    if model_uri:
        return _register_external(spec, model_uri, parent_version, chain_value)

    window = Window(start=train_start or spec.training.window.start, end=train_end or spec.training.window.end)
    with tracked("train", f"{spec.name}: reading the training data", len(TRAINING_STEPS), "steps") as steps:
        return _train_and_register(platform, spec, window, parent_version, chain_value, steps)


# What a training registration does, in order (the progress bar's steps).
TRAINING_STEPS = ("reading the training data", "training", "registering", "pinning and scanning")


def _train_and_register(platform: Platform, spec: LifecycleSpec, window: Window, parent_version: str | None,
                        chain_value: str, steps: Tracker) -> Registered:
    frame, inputs = prepare_training_task(spec, window)
    existing = claim_or_wait(platform, spec.name, inputs.fingerprint)
    if existing is not None:
        print(f"{spec.name}: v{existing.version} was already trained on exactly these inputs; not registering again")
        steps.update(len(TRAINING_STEPS), description=f"{spec.name}: trained before, v{existing.version}")
        return Registered(model=spec.name, version=existing.version, created=False, source="trained",
                          train_start=window.start, train_end=window.end)
    with _claim_released_on_failure(platform, spec.name, inputs.fingerprint):
        steps.advance(description=f"{spec.name}: {TRAINING_STEPS[1]} on {inputs.rows:,} rows")
        logged = train_and_log_task(spec, frame, inputs, platform.catalog)
        steps.advance(description=f"{spec.name}: {TRAINING_STEPS[2]}")
        version = register_in_catalog_task(platform, spec, logged.model_uri, logged.run_id, _version_tags(spec, {
            "data_hash": inputs.data_hash, "code_version": inputs.code_version, "train_start": str(window.start),
            "train_end": str(window.end), "training_rows": str(inputs.rows), TAG_FINGERPRINT: inputs.fingerprint,
            "source": "trained", "parent_version": parent_version or "", events.CHAIN_TAG: chain_value}))
        steps.advance(description=f"{spec.name}: {TRAINING_STEPS[3]} v{version}")
        pin_and_record_task(platform, spec, Registration(
            model=spec.name, version=version, source="trained", model_uri=logged.model_uri, run_id=logged.run_id,
            fingerprint=inputs.fingerprint, chain=chain_value, parent_version=parent_version,
            train_start=_midnight(window.start), train_end=_midnight(window.end), data_hash=inputs.data_hash,
            code_version=inputs.code_version, rows=inputs.rows))
    print(f"{spec.name}: registered v{version} trained on {inputs.rows} rows of {window.start}..{window.end}")
    steps.advance(description=f"{spec.name}: registered v{version}")
    return Registered(model=spec.name, version=version, created=True, source="trained",
                      train_start=window.start, train_end=window.end)


@contextmanager
def _claim_released_on_failure(platform: Platform, model: str, fingerprint: str) -> Iterator[None]:
    """A registration that fails gives up its claim, so the same inputs can be registered again at once."""
    try:
        yield
    except BaseException:
        platform.store.release_registration(model, fingerprint)
        raise


def _register_external(spec: LifecycleSpec, model_uri: str, parent_version: str | None,
                       chain: str) -> Registered:
    """A model built with any tool and logged to MLflow: registered as is, pinned, scanned and validated like any
    other."""
    platform = get_platform()
    # Four eyes needs an author: the service (a run started from the UI or a trigger) names nobody, so whoever
    # pressed Run could approve their own model. A model built elsewhere is registered by a named person.
    if current_actor() == SERVICE_ACTOR:
        raise ModelOpsError(f"{spec.name}: a model built elsewhere ({model_uri}) cannot be registered by the service "
                            "identity: nobody would be its author, so four eyes could not keep them from approving it",
                            "register it as a person: MODELOPS_USER=<name> modelops register "
                            f"{spec.name} --model-uri {model_uri}")
    fingerprint = hashlib.sha256(f"external:{model_uri}".encode()).hexdigest()[:32]
    existing = claim_or_wait(platform, spec.name, fingerprint)
    if existing is not None:
        return Registered(model=spec.name, version=existing.version, created=False, source="external")
    match = re.match(r"^runs:/([0-9a-f]{32})/", model_uri)
    run_id = match.group(1) if match else None
    with _claim_released_on_failure(platform, spec.name, fingerprint):
        try:
            version = register_in_catalog_task(platform, spec, model_uri, run_id, _version_tags(spec, {
                TAG_FINGERPRINT: fingerprint, "source": "external", "parent_version": parent_version or "",
                events.CHAIN_TAG: chain}))
        except Exception as exc:  # noqa: BLE001 - MLflow raises MlflowException or OSError for a bad URI
            raise CatalogError(f"cannot register {model_uri!r} as {spec.name}: {exc}",
                               "pass the model URI that log_model returned (models:/<model_id>)") from exc
        pin_and_record_task(platform, spec, Registration(
            model=spec.name, version=version, source="external", model_uri=model_uri, run_id=run_id,
            fingerprint=fingerprint, chain=chain, parent_version=parent_version))
    return Registered(model=spec.name, version=version, created=True, source="external")
