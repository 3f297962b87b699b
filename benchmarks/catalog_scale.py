"""The catalog at scale: 10,000 registered versions across 1,000 models.

A real MLflow registry (SQLite under a temporary state directory) filled through MlflowClient with versions whose
source is a placeholder (no artifacts: nothing here loads a model), and the governance store filled with the rows
and audit records registration, validation, approval and deployment write (one transaction per model). Then
timed: `modelops status` (every model, with and without `--store-only`, and one model), the per-model queries the CLI and the stages ask (versions,
serving version and aliases, serving and audit history), each against MLflow's own `search_model_versions` on the
same store (every version, and `name='x'`).

`CATALOG_MODELS` and `CATALOG_VERSIONS` scale it down for a quick look.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

MODELS = int(os.environ.get("CATALOG_MODELS", "1000"))
VERSIONS = int(os.environ.get("CATALOG_VERSIONS", "10"))
STATUS_TARGET_S = 5.0  # interactive: every model's status from the store within a few seconds
# With MLflow's mirror compared, status lists every registered model (aliases) and every version (tags) through
# MLflow, then reads the store: at most this many times MLflow's own listing of every version.
FULL_STATUS_RATIO = 3.0
PER_MODEL_TARGET_S = 0.25  # a per-model query well under a second


def model_name(index: int) -> str:
    return f"model-{index:04d}"


def populate_catalog(platform: Any, models: int, versions: int) -> None:
    """Registered models with `versions` versions each, tagged as the platform tags them; the newest version holds
    @champion, the one before @challenger."""
    from modelops.catalog import TAG_APPROVAL, TAG_SECURITY, TAG_STATE, TAG_VALIDATION

    client = platform.catalog.client
    for m in range(models):
        name = model_name(m)
        client.create_registered_model(name, tags={"owner": "bench", "risk_tier": "low", "task": "classification"})
        for v in range(1, versions + 1):
            state = "serving" if v == versions else "challenger" if v == versions - 1 else "standby"
            client.create_model_version(name, source=(platform.settings.artifact_root / "placeholder" / name / str(v)).as_uri(), tags={
                TAG_STATE: state, TAG_SECURITY: "passed", TAG_VALIDATION: "passed", TAG_APPROVAL: "approved"})
        client.set_registered_model_alias(name, "champion", str(versions))
        if versions > 1:
            client.set_registered_model_alias(name, "challenger", str(versions - 1))


def _manifest(name: str, v: int) -> dict[str, str]:
    return {"MLmodel": hashlib.sha256(f"{name}/{v}".encode()).hexdigest()}


def _gate_rows(store: Any, name: str, versions: int) -> Callable[[Any], dict[str, Any]]:
    """Every version's record, lineage, validation verdict and approval of one model, in one transaction
    (registration, validation and approval write them one stage at a time)."""
    from datetime import datetime, timezone

    from modelops.store.records import utcnow
    from modelops.store.schema import Lineage

    def change(session: Any) -> dict[str, Any]:
        for v in range(1, versions + 1):
            version, manifest = str(v), _manifest(name, v)
            store.add_version(model=name, version=version, source="external", fingerprint=_digest(name, v),
                              chain="continue", content_hash=content_hash(manifest), manifest=manifest,
                              registered_by="bench")(session)
            store.set_validation(name, version, security="passed", status="passed", metrics={"roc_auc": 0.7},
                                 run_id=f"run-{v}")(session)
            store.set_approval(name, version, "approved", [], "bench")(session)
            session.add(Lineage(model=name, version=version, source="external", model_uri=f"models:/{name}/{v}",
                                run_id=None, parent_version=None, train_start=datetime(2025, 1, v % 28 + 1,
                                                                                       tzinfo=timezone.utc),
                                train_end=datetime(2025, 3, 1, tzinfo=timezone.utc), data_hash=None,
                                code_version=None, registered_at=utcnow()))
        return {}
    return change


def _digest(name: str, v: int) -> str:
    return hashlib.sha256(f"fingerprint/{name}/{v}".encode()).hexdigest()


def content_hash(manifest: dict[str, str]) -> str:
    from tasks.integrity import content_hash as of

    return of(manifest)


def populate_store(platform: Any, models: int, versions: int) -> None:
    """The governance rows and the audit records that back them, as the stages write them (so the store's own
    integrity checks find nothing): the newest version serves as champion, the one before as challenger."""
    store = platform.store
    for m in range(models):
        name = model_name(m)
        facts = []
        for v in range(1, versions + 1):
            facts += [_fact(name, str(v), "register", "register-external", "registered",
                            {"content_hash": content_hash(_manifest(name, v))}),
                      _fact(name, str(v), "validate", "run-gates", "passed", {"validation_run_id": f"run-{v}"}),
                      _fact(name, str(v), "approve", "apply-policy", "approved", {})]
        store.record_all(facts, _gate_rows(store, name, versions))
        if versions > 1:
            store.record(_fact(name, str(versions - 1), "deploy", "serve-as-challenger", "deployed", {}),
                         store.start_deployment(name, str(versions - 1), "challenger", "champion_challenger", "bench"))
        store.record(_fact(name, str(versions), "deploy", "serve-as-champion", "deployed", {}),
                     store.start_deployment(name, str(versions), "champion", "champion_only", "bench"))


def _fact(model: str, version: str | None, stage: str, action: str, outcome: str, evidence: dict[str, Any]) -> Any:
    from modelops.store.audit_chain import AuditFact

    return AuditFact(actor="bench", stage=stage, action=action, model=model, version=version, outcome=outcome,
                     evidence=evidence, event=None, flow_run_id=None)


def timed(call: Callable[[], Any], repeat: int = 3) -> float:
    """The best of `repeat` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def cli_seconds(home: Path, *args: str) -> float:
    """Wall time of a real `modelops` command in its own process (imports included)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "modelops.cli", *args], env={**os.environ, "MODELOPS_HOME": str(home)},
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def per_model_queries(platform: Any, name: str) -> dict[str, Callable[[], Any]]:
    """What the CLI and the stages ask about one model."""
    from modelops.reporting import version_records

    store, catalog = platform.store, platform.catalog
    return {"catalog.versions": lambda: catalog.versions(name),
            "catalog.aliases": lambda: catalog.aliases(name),
            "store.governed_versions": lambda: store.governed_versions(name),
            "store.serving_version": lambda: store.serving_version(name, "champion"),
            "store.deployments (history)": lambda: store.deployments(name),
            "store.audit_trail (history)": lambda: store.audit_trail(name),
            "status rows (version_records)": lambda: version_records(platform, name, "roc_auc")}


def main() -> int:
    reuse = os.environ.get("CATALOG_HOME")  # an already populated state directory, to time again
    home = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="modelops-catalog-")) / "state"
    os.environ["MODELOPS_HOME"] = str(home)
    from modelops.platform import get_platform
    from modelops.reporting import status_text

    platform = get_platform()
    if not reuse:
        started = time.perf_counter()
        populate_catalog(platform, MODELS, VERSIONS)
        populate_store(platform, MODELS, VERSIONS)
        print(f"populated {MODELS} models x {VERSIONS} versions in {time.perf_counter() - started:.0f} s ({home})")
    client, one = platform.catalog.client, model_name(MODELS // 2)
    all_versions = timed(lambda: client.search_model_versions("", max_results=200_000))
    one_versions = timed(lambda: client.search_model_versions(f"name='{one}'"))
    count = len(client.search_model_versions("", max_results=200_000))
    print(f"baseline: MLflow search_model_versions, all {count} versions: {all_versions * 1000:.0f} ms; "
          f"name='{one}': {one_versions * 1000:.1f} ms")
    models = platform.catalog.model_names()
    status_all = timed(lambda: status_text(platform, None, {}), repeat=2)
    store_only = timed(lambda: status_text(platform, None, {}, mlflow=False), repeat=2)
    status_one = timed(lambda: status_text(platform, [one], {}))
    print(f"status, all {len(models)} models (in process): {status_all:.2f} s = "
          f"{status_all / all_versions:.2f}x search_model_versions(all); --store-only {store_only:.2f} s = "
          f"{store_only / all_versions:.2f}x")
    print(f"status, one model (in process): {status_one * 1000:.1f} ms = "
          f"{status_one / one_versions:.1f}x search_model_versions(name=)")
    cli = {label: cli_seconds(home, *args) for label, args in
           (("status", ["status"]), ("status --store-only", ["status", "--store-only"]), (f"status {one}", ["status", one]),
            ("--help", ["--help"]))}
    print("`modelops` in its own process, imports included: " + "; ".join(f"{k} {v:.2f} s" for k, v in cli.items()))
    slow = [] if store_only <= STATUS_TARGET_S else [f"status --store-only > {STATUS_TARGET_S} s"]
    if status_all > FULL_STATUS_RATIO * all_versions:
        slow.append(f"status > {FULL_STATUS_RATIO}x MLflow's own listing of every version")
    for label, query in per_model_queries(platform, one).items():
        seconds = timed(query)
        print(f"  {label}: {seconds * 1000:.1f} ms = {seconds / one_versions:.1f}x search_model_versions(name=)")
        if seconds > PER_MODEL_TARGET_S:
            slow.append(f"{label} > {PER_MODEL_TARGET_S} s")
    if slow:
        print(f"targets missed: {slow}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
