"""Lineage of a model's versions, from the governance store and MLflow: the data a version was trained on (loader,
window, content hash), its training run (MLflow run, code version, parameters), the version itself (fingerprint,
pinned content hash), the validation and approval records with their evidence, its deployments and the prediction
batches it scored. `modelops lineage <model>[/<version>]` prints it as a tree or as JSON."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from modelops.cli_output import flat
from modelops.cli_render import Block, Node, Tree, plain_text
from modelops.errors import CatalogError, ModelOpsError
from modelops.platform import Platform
from modelops.store.records import AuditEntry, GovernedVersion, as_utc
from modelops.store.schema import Deployment, Lineage, PredictionBatch

# Parameters MLflow's training run carries beside the spec's own (train_and_log adds them).
_RUN_EXTRAS = ("train_start", "train_end", "training_rows")
# Audit stages whose records are a version's evidence on its way to serving.
EVIDENCE_STAGES = ("validate", "retrain", "approve")
REPRODUCE_STAGE = "reproduce"
# The text tree lists this many of a version's newest prediction batches (JSON has them all).
RECENT_BATCHES = 5
_DIGEST = re.compile(r"[0-9a-f]{64}")  # a sha256 in evidence: its first characters are enough in the tree
_TARGET = re.compile(r"^(?P<model>[^/\s]+)(?:/v?(?P<version>[1-9][0-9]{0,8}))?$")


def parse_target(text: str, version_required: bool = False) -> tuple[str, str | None]:
    """`<model>` or `<model>/<version>` (a `v` before the number is accepted) as (model, version or None)."""
    match = _TARGET.match(text.strip())
    if match is None or (version_required and match["version"] is None):
        shape = "<model>/<version>" if version_required else "<model> or <model>/<version>"
        raise ModelOpsError(f"{text!r} does not name a model version", f"write {shape}, e.g. flight-delay/2")
    return match["model"], match["version"]


def batch_kind(batch: PredictionBatch) -> str:
    """online: logged by the gateway from its spool; batch: a file scored by the score stage."""
    return "online" if batch.source.startswith("online:") else "batch"


def _when(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def run_params(platform: Platform, run_id: str | None) -> dict[str, Any]:
    """The spec parameters MLflow's training run logged (as text: MLflow keeps parameters as strings), read back as
    the values they were where the text says so unambiguously."""
    if not run_id:
        return {}
    try:
        logged = platform.catalog.client.get_run(run_id).data.params
    except Exception:  # noqa: BLE001 - a run deleted from MLflow: the record still stands without it
        return {}
    return {key: literal(value) for key, value in logged.items() if key not in _RUN_EXTRAS}


def literal(text: str) -> Any:
    """A parameter as logged by MLflow (str() of the value) back to the value: numbers, booleans, None, lists."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def registration_record(trail: Sequence[AuditEntry], version: str) -> AuditEntry | None:
    return next((e for e in trail if e.stage == "register" and e.version == version), None)


def recorded_params(platform: Platform, trail: Sequence[AuditEntry], lineage: Lineage | None) -> dict[str, Any]:
    """The parameters a version was trained with: from its register record (versions registered since lineage was
    added keep them there), else from its MLflow training run."""
    registered = registration_record(trail, lineage.version) if lineage else None
    if registered is not None and isinstance(registered.evidence.get("params"), dict):
        return dict(registered.evidence["params"])
    return run_params(platform, lineage.run_id if lineage else None)


def evidence_items(evidence: dict[str, Any], limit: int = 200) -> dict[str, str]:
    """The evidence of a record, one short line per non-empty item (the JSON output keeps it whole)."""
    items = {}
    for key, value in evidence.items():
        if value in (None, [], {}, ""):
            continue
        text = short(value) if isinstance(value, str) and _DIGEST.fullmatch(value) else flat(value)
        items[key] = text if len(text) <= limit else text[:limit - 3] + "..."
    return items


def _record(entry: AuditEntry) -> dict[str, Any]:
    return {"at": _when(entry.at), "actor": entry.actor, "stage": entry.stage, "action": entry.action,
            "outcome": entry.outcome, "evidence": entry.evidence, "seq": entry.seq}


def _deployment(row: Deployment) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "strategy": row.strategy, "deployed_at": _when(row.deployed_at),
            "deployed_by": row.deployed_by, "ended_at": _when(row.ended_at), "ended_reason": row.ended_reason}


def _batch(row: PredictionBatch) -> dict[str, Any]:
    return {"id": row.id, "kind": batch_kind(row), "role": row.role, "rows": row.rows, "source": row.source,
            "first_event_at": _when(row.first_event_at), "last_event_at": _when(row.last_event_at),
            "scored_at": _when(row.scored_at), "status": row.status}


def _predictions(batches: list[PredictionBatch]) -> dict[str, Any]:
    kinds: dict[str, dict[str, int]] = {}
    for row in batches:
        kind = kinds.setdefault(batch_kind(row), {"batches": 0, "rows": 0})
        kind["batches"] += 1
        kind["rows"] += row.rows
    return {"batches": len(batches), "rows": sum(b.rows for b in batches),
            "first_event_at": _when(min((b.first_event_at for b in batches), default=None)),
            "last_event_at": _when(max((b.last_event_at for b in batches), default=None)),
            "by_kind": kinds, "list": [_batch(b) for b in sorted(batches, key=lambda b: as_utc(b.scored_at))]}


@dataclass(frozen=True)
class _ModelFacts:
    """Everything the store holds about one model, read once for all its versions."""

    trail: list[AuditEntry]
    lineage: dict[str, Lineage]
    deployments: list[Deployment]
    batches: list[PredictionBatch]


def _current_loader(model: str) -> str | None:
    """Versions registered before the register record kept the loader: the spec's loader today, said as such."""
    from modelops.spec import load_spec

    try:
        return f"{load_spec(model).data.loader} (today's spec; not recorded at registration)"
    except ModelOpsError:
        return None


def _state(governed: GovernedVersion, deployments: list[Deployment]) -> str:
    if governed.retired:
        return f"retired: {governed.retired_reason}"
    serving = sorted(d.role for d in deployments if d.ended_at is None)
    return "serving as " + ", ".join(f"@{role}" for role in serving) if serving else "not serving"


def version_lineage(platform: Platform, governed: GovernedVersion, facts: _ModelFacts) -> dict[str, Any]:
    """One version's lineage, oldest link first: data, training run, version, evidence, deployments, predictions."""
    version = governed.version
    lineage = facts.lineage.get(version)
    registered = registration_record(facts.trail, version)
    evidence = registered.evidence if registered else {}
    deployments = [d for d in facts.deployments if d.version == version]
    data = None
    if governed.source == "trained":
        data = {"loader": evidence.get("loader") or _current_loader(governed.model), "window": {"start": _when(governed.train_start),
                                                             "end": _when(governed.train_end)},
                "rows": evidence.get("rows"), "content_hash": lineage.data_hash if lineage else None}
    return {
        "model": governed.model, "version": version, "state": _state(governed, deployments),
        "data": data,
        "training_run": {"source": governed.source, "mlflow_run_id": lineage.run_id if lineage else None,
                         "model_uri": lineage.model_uri if lineage else None,
                         "code_version": lineage.code_version if lineage else None,
                         "params": recorded_params(platform, facts.trail, lineage),
                         "parent_version": lineage.parent_version if lineage else None},
        "model_version": {"fingerprint": governed.fingerprint, "content_hash": governed.content_hash,
                          "files": len(governed.manifest), "registered_at": _when(governed.registered_at),
                          "registered_by": governed.registered_by, "validation": governed.validation_status,
                          "security_scan": governed.security_status, "holdout_metrics": governed.holdout_metrics},
        "validation_and_approvals": [_record(e) for e in facts.trail
                                     if e.version == version and e.stage in EVIDENCE_STAGES],
        "deployments": [_deployment(d) for d in deployments],
        "predictions": _predictions([b for b in facts.batches if b.version == version]),
        "reproductions": [_record(e) for e in facts.trail if e.version == version and e.stage == REPRODUCE_STAGE],
    }


def lineage_data(platform: Platform, model: str, version: str | None = None) -> dict[str, Any]:
    """The lineage of one version, or of every version of the model (oldest first)."""
    store = platform.store
    versions = store.governed_versions(model)
    if not versions:
        raise CatalogError(f"the governance store has no versions of {model!r}",
                           "name a registered model (`modelops status` lists them)")
    if version is not None:
        versions = [v for v in versions if v.version == version]
        if not versions:
            raise CatalogError(f"{model} v{version} has no governance record",
                               f"`modelops lineage {model}` lists its versions")
    facts = _ModelFacts(trail=store.audit_trail(model), lineage={r.version: r for r in store.lineage(model)},
                        deployments=store.deployments(model, version),
                        batches=store.prediction_batches(model, version, include_failed=True))
    return {"model": model, "versions": [version_lineage(platform, v, facts) for v in versions]}


# --- the text tree ----------------------------------------------------------------------------------------------


def short(digest: str | None, length: int = 12) -> str:
    return f"{digest[:length]}.." if digest else "-"


def day_or_time(text: str | None) -> str:
    """An ISO time as it reads best: the date alone at midnight, else date and time to the second (UTC)."""
    if not text:
        return "-"
    value = datetime.fromisoformat(text)
    return f"{value:%Y-%m-%d}" if (value.hour, value.minute, value.second) == (0, 0, 0) else f"{value:%Y-%m-%d %H:%M:%S}"


def _record_node(record: dict[str, Any]) -> Node:
    label = f"{day_or_time(record['at'])} {record['stage']} {record['action']}: {record['outcome']} by {record['actor']}"
    return label, [(f"{key}: {text}", []) for key, text in evidence_items(record["evidence"]).items()]


def _data_node(node: dict[str, Any]) -> Node:
    data = node["data"]
    if data is None:
        return "data: none recorded (a model built outside the platform and registered by URI)", []
    window = data["window"]
    return (f"data: {data['loader'] or 'loader not recorded'}, window {day_or_time(window['start'])} .. "
            f"{day_or_time(window['end'])} (end excluded), {data['rows'] if data['rows'] is not None else '?'} rows, "
            f"content sha256 {short(data['content_hash'])}"), []


def _training_node(node: dict[str, Any]) -> Node:
    run = node["training_run"]
    children = [(f"code version: {run['code_version'] or '-'}", []),
                (f"params: {flat(run['params']) if run['params'] else '-'}", []),
                (f"model URI: {run['model_uri'] or '-'}", [])]
    if run["parent_version"]:
        children.append((f"parent version: v{run['parent_version']}", []))
    return f"training run: MLflow run {run['mlflow_run_id'] or '-'} ({run['source']})", children


def _version_node(node: dict[str, Any]) -> Node:
    mv = node["model_version"]
    children = [(f"fingerprint {mv['fingerprint']}, pinned content sha256 {short(mv['content_hash'])} "
                 f"({mv['files']} files)", []),
                (f"registered {day_or_time(mv['registered_at'])} by {mv['registered_by']}", []),
                (f"validation {mv['validation'] or 'not run'}, security scan {mv['security_scan'] or 'not run'}"
                 + (f", holdout {flat(mv['holdout_metrics'])}" if mv["holdout_metrics"] else ""), [])]
    return f"model version v{node['version']}", children


def _deployments_node(node: dict[str, Any]) -> Node:
    rows = node["deployments"]
    children = [(f"@{d['role']} ({d['strategy']}) from {day_or_time(d['deployed_at'])} by {d['deployed_by']} until "
                 + (f"{day_or_time(d['ended_at'])} ({d['ended_reason']})" if d["ended_at"] else "now"), [])
                for d in rows]
    return f"deployments: {len(rows) or 'none'}", children


def _predictions_node(node: dict[str, Any]) -> Node:
    p = node["predictions"]
    if not p["batches"]:
        return "predictions: none logged", []
    kinds = ", ".join(f"{kind} {k['batches']} batches / {k['rows']} rows" for kind, k in sorted(p["by_kind"].items()))
    children = [(f"{b['kind']} {b['id']}: {b['rows']} rows as {b['role']}, events {day_or_time(b['first_event_at'])}"
                 f" .. {day_or_time(b['last_event_at'])}, scored {day_or_time(b['scored_at'])}"
                 + ("" if b["status"] == "ok" else f" ({b['status']})"), [])
                for b in p["list"][-RECENT_BATCHES:]]
    if p["batches"] > RECENT_BATCHES:
        children.insert(0, (f"(the newest {RECENT_BATCHES}; --json lists all {p['batches']})", []))
    return (f"predictions: {p['rows']} rows in {p['batches']} batches ({kinds}), events "
            f"{day_or_time(p['first_event_at'])} .. {day_or_time(p['last_event_at'])}"), children


def version_tree(node: dict[str, Any]) -> Node:
    evidence = node["validation_and_approvals"]
    children = [_data_node(node), _training_node(node), _version_node(node),
                (f"validation and approvals: {len(evidence) or 'none'}", [_record_node(r) for r in evidence]),
                _deployments_node(node), _predictions_node(node)]
    if node["reproductions"]:
        children.append(("reproductions", [_record_node(r) for r in node["reproductions"]]))
    return f"{node['model']} v{node['version']} ({node['state']})", children


def lineage_blocks(data: dict[str, Any]) -> list[Block]:
    return [Tree(version_tree(node)) for node in data["versions"]]


LINEAGE_SEPARATOR = "\n\n"


def lineage_text(data: dict[str, Any]) -> str:
    return plain_text(lineage_blocks(data), LINEAGE_SEPARATOR)
