"""A version's files are pinned at registration and checked before validation, at approval and before every load
for scoring; what serves is what the governance store says, whatever MLflow's aliases and tags say.

MLflow tags and aliases can be edited by anyone with MLflow access, and the artifact store by anyone with access
to its files, so neither is trusted: the content hash of every file of the model directory is recorded in the
store when the version is registered, and a mismatch refuses to load, is audited and alerts.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.catalog import CHAMPION, signature_columns
from modelops.errors import (
    CatalogError, ModelEnvironmentError, RetiredVersionError, StoreIntegrityError, TamperedModelError,
    UnsafeModelError,
)
from modelops.lifecycle import GateStatus, VersionState
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.status_facts import ROLES, AliasFinding, TagDifferences, alias_disagreements, read_status_facts
from modelops.store.records import GovernedVersion
from tasks import as_task
from tasks.scoring import file_digest
from tasks.model_kinds import Predictor, ScanContext
from tasks.security import ScanResult, load_scanned_model, scan_model_dir
from tasks.environments import ensure_environment
from tasks.worker_client import environment_plan, scan_for_environment, start_in_environment


def manifest_of(model_dir: Path) -> dict[str, str]:
    """sha256 of every file under the model directory, by relative path."""
    return {path.relative_to(model_dir).as_posix(): file_digest(path)
            for path in sorted(model_dir.rglob("*")) if path.is_file()}


def content_hash(manifest: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def manifest_differences(pinned: dict[str, str], found: dict[str, str]) -> list[str]:
    changed = [f"{name} changed" for name in sorted(pinned) if name in found and found[name] != pinned[name]]
    return (changed + [f"{name} removed" for name in sorted(set(pinned) - set(found))]
            + [f"{name} added" for name in sorted(set(found) - set(pinned))])


def scratch_dir(platform: Platform) -> Path:
    folder = platform.settings.home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def registered_manifest(platform: Platform, model: str, version: str) -> dict[str, str]:
    """The manifest of a version's files as the catalog holds them right now."""
    with tempfile.TemporaryDirectory(dir=scratch_dir(platform)) as folder:
        return manifest_of(platform.catalog.download_model(model, version, Path(folder)))


def require_governed(platform: Platform, model: str, version: str) -> GovernedVersion:
    """The store's record of the version, provided the audit chain accounts for every gate row of it."""
    governed = platform.store.governed_version(model, version)
    if governed is None:
        raise CatalogError(f"{model} v{version} has no governance record, so no gate has judged it",
                           "register versions through the platform (`modelops register`, `--model-uri` for models "
                           "built elsewhere); versions made directly in MLflow are never served")
    unbacked = platform.store.unbacked_state(model, version)
    if unbacked:
        raise StoreIntegrityError(f"the governance store holds gate rows that no audit record accounts for: "
                                  f"{'; '.join(unbacked)}", "rows were written around the platform: run `modelops "
                                  "audit verify`, find out who wrote them and restore the store from a backup")
    return governed


def verify_pin(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, model_dir: Path,
               occasion: str) -> None:
    """Refuse (audited and alerted) a model directory whose files differ from those pinned at registration."""
    found = manifest_of(model_dir)
    if content_hash(found) == governed.content_hash:
        return
    differences = manifest_differences(governed.manifest, found)
    from tasks.alerting import alert_finding
    from tasks.audit import record_stage

    record_stage(stage="integrity", action="verify-model-files", model=spec.name, version=governed.version,
                 outcome="tampered", evidence={"occasion": occasion, "pinned": governed.content_hash,
                                               "found": content_hash(found), "differences": differences},
                 event=None)
    alert_finding(platform, spec, governed.version, "integrity-model-files",
                  f"{spec.name} v{governed.version}: model files changed after registration",
                  f"Refused at {occasion}: {'; '.join(differences)}. Pinned {governed.content_hash[:16]}..")
    raise TamperedModelError(f"{spec.name} v{governed.version}: the model files differ from those pinned at "
                             f"registration ({'; '.join(differences)}); refused at {occasion}",
                             "restore the original artifact, or register and validate the new file as a new version")


def check_pinned_files(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, occasion: str) -> None:
    with tempfile.TemporaryDirectory(dir=scratch_dir(platform)) as folder:
        verify_pin(platform, spec, governed, platform.catalog.download_model(spec.name, governed.version,
                                                                             Path(folder)), occasion)


@dataclass(frozen=True)
class VerifiedModel:
    """A loaded model whose bytes are the pinned ones, with the inputs its pinned MLmodel declares."""

    model: Predictor
    columns: list[tuple[str, str]]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(frame)

    def close(self) -> None:
        """Stop what the model holds outside this process (a worker of its own environment); idempotent."""
        close = getattr(self.model, "close", None)
        if close is not None:
            close()


def _scanned_what_was_pinned(spec: LifecycleSpec, governed: GovernedVersion, model_dir: Path, scan: ScanResult,
                             occasion: str) -> None:
    """The scan read the MLmodel and the model file once, after the pin check read them: the bytes it judged
    (and that load_scanned_model will insist on) must be the pinned ones, else a file was swapped in between."""
    said = {"MLmodel": scan.mlmodel_sha256}
    if scan.model_file is not None:
        said[Path(scan.model_file).relative_to(model_dir.resolve()).as_posix()] = scan.sha256
    swapped = [name for name, digest in said.items() if digest is not None and governed.manifest.get(name) != digest]
    if swapped:
        raise TamperedModelError(f"{spec.name} v{governed.version}: {', '.join(swapped)} changed while it was being "
                                 f"checked at {occasion}", "someone is writing the model's files: find out who; "
                                 "nothing was loaded")


REQUIREMENTS = "requirements.txt"  # MLflow's, logged with the version: what its own environment is built from


def _pinned_requirements(spec: LifecycleSpec, governed: GovernedVersion, model_dir: Path, occasion: str) -> list[str]:
    """The requirements logged with the version, read once and only if they are the pinned bytes (they decide what
    an environment installs, so a file swapped in after the pin check must not reach uv)."""
    path = model_dir / REQUIREMENTS
    data = path.read_bytes() if path.is_file() else None
    found = hashlib.sha256(data).hexdigest() if data is not None else None
    if found != governed.manifest.get(REQUIREMENTS):
        raise TamperedModelError(f"{spec.name} v{governed.version}: {REQUIREMENTS} changed while it was being "
                                 f"checked at {occasion}", "someone is writing the model's files: find out who; "
                                 "nothing was built or loaded")
    return data.decode(errors="replace").splitlines() if data is not None else []


def open_pinned_model(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion,
                      occasion: str) -> tuple[ScanResult, VerifiedModel | None]:
    """Download, check the pin, scan, and load only what passed: (scan, model or None when the scan failed).
    What is loaded is byte for byte what was pinned at registration and passed the scan. A version that runs in
    its own environment gets one (built or started) only once its files matched the pin, its requirements passed
    their checks and the platform's scan found nothing but what the environment must judge (names)."""
    with tempfile.TemporaryDirectory(dir=scratch_dir(platform)) as folder:
        model_dir = platform.catalog.download_model(spec.name, governed.version, Path(folder))
        verify_pin(platform, spec, governed, model_dir, occasion)
        context = ScanContext.of(spec)
        scan = scan_model_dir(model_dir, spec.validation.security, context)
        _scanned_what_was_pinned(spec, governed, model_dir, scan, occasion)
        label = f"{spec.name} v{governed.version}"
        try:
            planned = environment_plan(spec.deploy.environment, _pinned_requirements(spec, governed, model_dir,
                                                                                     occasion),
                                       scan.kind, scan.serialization, label)
        except ModelEnvironmentError as exc:  # requirements no environment may install: the version fails
            return replace(scan, passed=False, findings=[*scan.findings, f"{exc.what} ({exc.fix})"]), None
        environment = None
        if planned is not None and all(finding in scan.name_findings for finding in scan.findings):
            # Only names can be in question, and the model loads in its own environment: judged (scanned
            # again) there. A version failing anything else gets no environment built or started.
            environment = ensure_environment(platform.settings.home, planned, label)
            scan = scan_for_environment(model_dir, spec.validation.security, context, environment)
            _scanned_what_was_pinned(spec, governed, model_dir, scan, occasion)
        if not scan.passed:
            return scan, None
        try:
            model = (start_in_environment(platform.settings.home, environment, scan, label)
                     if environment is not None else load_scanned_model(scan))
        except UnsafeModelError as exc:  # what only loading can tell (malformed trees): a failed scan all the same
            return replace(scan, passed=False, findings=[*scan.findings, exc.what]), None
    return scan, VerifiedModel(model, signature_columns(scan.signature, label))


def load_verified_model(platform: Platform, spec: LifecycleSpec, version: str, occasion: str) -> VerifiedModel:
    """A live version for scoring: governed, not retired, passed the security scan at validation (all read from
    the store), with its files as pinned; the file is scanned again as it is loaded."""
    governed = require_governed(platform, spec.name, version)
    if governed.retired:
        raise RetiredVersionError(f"{spec.name} v{version} is retired and cannot serve",
                                  "score with the current champion (`modelops status` lists it)")
    if governed.security_status != GateStatus.passed:
        raise UnsafeModelError(f"{spec.name} v{version} has not passed the security scan "
                               f"(security scan: {governed.security_status or 'not run'})",
                               "run the validate stage; only scanned model files are deserialised")
    scan, model = open_pinned_model(platform, spec, governed, occasion)
    if model is None:
        raise UnsafeModelError(f"{spec.name} v{version} no longer passes the security scan: {scan.findings}",
                               "register and validate a safe model file as a new version")
    return model


def alias_findings(platform: Platform, model: str) -> list[AliasFinding]:
    """Where MLflow's aliases disagree with what the store says serves."""
    return alias_disagreements(platform.catalog.aliases_or_empty(model),
                               {role: platform.store.serving_version(model, role) for role in ROLES})


def report_alias_findings(platform: Platform, spec: LifecycleSpec, occasion: str) -> list[AliasFinding]:
    """Audit and alert a disagreement between MLflow's aliases and the store (never a reason to serve)."""
    findings = alias_findings(platform, spec.name)
    if not findings:
        return findings
    from tasks.alerting import alert_finding
    from tasks.audit import record_stage

    texts = [finding.text(spec.name) for finding in findings]
    record_stage(stage="integrity", action="compare-aliases", model=spec.name, version=None, outcome="mismatch",
                 evidence={"occasion": occasion, "findings": texts}, event=None)
    alert_finding(platform, spec, None, "integrity-aliases", f"{spec.name}: MLflow aliases disagree with the "
                  "governance store", "; ".join(texts) + ". The store decides what serves; "
                  "`modelops reconcile` resets the aliases.")
    for text in texts:
        print(f"finding: {text}")
    return findings


check_pinned_files_task = as_task(check_pinned_files)


def mirror_serving(platform: Platform, model: str, standby: str | None = None) -> list[str]:
    """Point MLflow's aliases (and the versions' lifecycle tags) at what the store says serves, for people browsing
    the MLflow UI. Returns what it changed. A nominated (not yet serving) @challenger alias is left alone."""
    from modelops.catalog import TAG_STATE

    catalog, changed = platform.catalog, []
    aliases = catalog.aliases_or_empty(model)
    for role in ROLES:
        serving = platform.store.serving_version(model, role)
        if serving is not None and aliases.get(role) != serving:
            catalog.set_alias(model, role, serving)
            catalog.set_tags(model, serving, {TAG_STATE: VersionState.serving if role == CHAMPION else VersionState.challenger})
            changed.append(f"@{role} -> v{serving}")
        elif serving is None and role in aliases and (role == CHAMPION or aliases[role] == aliases.get(CHAMPION)
                                                        or aliases[role] == platform.store.serving_version(
                                                            model, CHAMPION)):
            # no champion serves; or the nominated challenger was promoted and is the champion now
            catalog.delete_alias(model, role)
            changed.append(f"@{role} removed")
    previous = platform.store.governed_version(model, standby) if standby is not None else None
    if previous is not None and not previous.retired:
        catalog.set_tags(model, previous.version, {TAG_STATE: VersionState.standby})
    return changed


def tag_differences(platform: Platform, model: str) -> TagDifferences:
    """{version: {tag: (what MLflow says, what the store says)}} wherever the mirror tags disagree with the store."""
    return read_status_facts(platform, [model]).tag_differences(model)


def reconcile_catalog(platform: Platform, model: str) -> list[str]:
    """Make MLflow mirror the store again: aliases, and each version's state and verdict tags. Audited."""
    from tasks.audit import record_stage

    changed = mirror_serving(platform, model)
    for version, fixes in tag_differences(platform, model).items():
        platform.catalog.set_tags(model, version, {k: wanted for k, (_, wanted) in fixes.items()})
        changed += [f"v{version} {k}: {was!r} -> {wanted!r}" for k, (was, wanted) in fixes.items()]
    if changed:
        record_stage(stage="integrity", action="reconcile-catalog", model=model, version=None, outcome="reconciled",
                     evidence={"changes": changed}, event=None)
    return changed
