"""Registering a version: one registration per set of inputs (a claim in the store), the files pinned by content
hash, lineage and the audit record."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime

from modelops import events
from modelops.errors import CatalogError, StoreIntegrityError
from modelops.platform import Platform, current_actor
from modelops.recovery import Owner
from modelops.spec import LifecycleSpec
from modelops.store.records import GovernedVersion
from tasks import as_task
from tasks.audit import record_stage
from tasks.integrity import content_hash, registered_manifest

# How long a registration waits for a concurrent one of the same inputs (which is training the same model).
WAIT_SECONDS = float(os.environ.get("MODELOPS_REGISTER_WAIT_SECONDS", "1800"))


def _owner_is_gone(claimed_by: str) -> bool:
    """A claim whose process died on this host (a killed register) must not block the inputs forever."""
    owner = Owner.from_text(claimed_by)
    return owner is not None and owner.is_gone()


def claim_or_wait(platform: Platform, model: str, fingerprint: str, wait_seconds: float = WAIT_SECONDS) -> \
        GovernedVersion | None:
    """None when this run holds the claim and must register; else the live version a concurrent (or earlier)
    registration of the same inputs made. Concurrent identical registrations thus yield one version."""
    store = platform.store
    deadline = time.monotonic() + wait_seconds
    while True:
        existing = store.live_version_with_fingerprint(model, fingerprint)
        if existing is not None:
            return existing
        if store.claim_registration(model, fingerprint, Owner.current().text()):
            # Another run may have finished between the look and the claim.
            existing = store.live_version_with_fingerprint(model, fingerprint)
            if existing is not None:
                store.release_registration(model, fingerprint)
            return existing
        holder = store.registration_claimant(model, fingerprint)
        if holder is not None and _owner_is_gone(holder):
            store.release_registration(model, fingerprint)
            continue
        if time.monotonic() > deadline:
            raise CatalogError(f"{model}: a registration of the same inputs (claimed by {holder}) has not finished "
                               f"within {wait_seconds:.0f} s", "wait for it to finish, or, if that process is gone, "
                               "run register again on its host (a dead claimant's claim is released)")
        time.sleep(0.5)


@dataclass(frozen=True)
class Registration:
    model: str
    version: str
    source: str
    model_uri: str
    run_id: str | None
    fingerprint: str
    chain: str
    parent_version: str | None
    train_start: datetime | None = None
    train_end: datetime | None = None
    data_hash: str | None = None
    code_version: str | None = None
    rows: int | None = None


def pin_and_record(platform: Platform, spec: LifecycleSpec, registration: Registration) -> str:
    """Pin every file of the registered version by content hash, record lineage, the governance record and the
    audit entry; emits the registered event. Returns the content hash."""
    manifest = registered_manifest(platform, spec.name, registration.version)
    digest = content_hash(manifest)
    r = registration
    earlier = platform.store.governed_version(spec.name, r.version)
    if earlier is not None and (earlier.content_hash, earlier.fingerprint) != (digest, r.fingerprint):
        raise StoreIntegrityError(
            f"MLflow gave {spec.name} the version number v{r.version} again, but the governance store holds an "
            f"earlier v{r.version} (registered {earlier.registered_at:%Y-%m-%d %H:%M} with other files): the "
            "registered model was deleted and recreated in MLflow", "restore the MLflow registry from a backup; "
            "version numbers must never be reused, the store's records and audit trail refer to them")
    platform.store.record_lineage(model=spec.name, version=r.version, source=r.source, model_uri=r.model_uri,
                                  run_id=r.run_id, parent_version=r.parent_version, train_start=r.train_start,
                                  train_end=r.train_end, data_hash=r.data_hash, code_version=r.code_version)
    # The risk tier as registered: approval never judges the version by a lower one (tasks.decisions).
    evidence = {"run_id": r.run_id, "model_uri": r.model_uri, "source": r.source, "parent_version": r.parent_version,
                "fingerprint": r.fingerprint, "risk_tier": spec.risk_tier.value}
    if r.source == "trained":
        # The loader and parameters too: `modelops reproduce` retrains from this record (the fingerprint proves
        # the parameters are the ones trained with).
        evidence |= {"train_window": [r.train_start, r.train_end], "rows": r.rows, "data_hash": r.data_hash,
                     "code_version": r.code_version, "loader": spec.data.loader, "params": dict(spec.training.params)}
    record_stage(stage="register", action="train-and-register" if r.source == "trained" else "register-external",
                 model=spec.name, version=r.version, outcome="registered", evidence=evidence, event=events.REGISTERED,
                 labels={events.CHAIN_LABEL: r.chain},
                 change=platform.store.add_version(model=spec.name, version=r.version, source=r.source,
                                                   fingerprint=r.fingerprint, chain=r.chain, content_hash=digest,
                                                   manifest=manifest, registered_by=current_actor()))
    return digest


pin_and_record_task = as_task(pin_and_record)


def ensure_registered_model(platform: Platform, spec: LifecycleSpec) -> None:
    """The model's registered model in the catalog, with its owner, risk tier and task as tags. Its entry points
    must import first (spec.entry): a spec that cannot train or load data leaves nothing behind."""
    platform.catalog.ensure_registered_model(spec.name, spec.description, {"owner": spec.owner,
                                                                           "risk_tier": spec.risk_tier.value,
                                                                           "task": spec.task})


def register_in_catalog(platform: Platform, spec: LifecycleSpec, model_uri: str, run_id: str | None,
                        tags: dict[str, str]) -> str:
    """A new catalog version of the model; returns its number (pinned and recorded next, by pin_and_record)."""
    return platform.catalog.register(spec.name, model_uri, run_id, tags)


ensure_registered_model_task = as_task(ensure_registered_model)
register_in_catalog_task = as_task(register_in_catalog)
