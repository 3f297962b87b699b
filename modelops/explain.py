"""Which model made this decision: given a prediction id, every logged scoring of it (batch or online) with the
version that answered, its role, the deployment that served it at that moment, the approval and validation in force
then with their evidence, where the version came from, the input row as logged, and its ground truth if it arrived.
`modelops explain-decision <prediction id>` prints it (or JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from modelops.cli_output import flat, number
from modelops.errors import DataError
from modelops.lifecycle import ApprovalStatus, GateStatus
from modelops.lineage import batch_kind, day_or_time, evidence_items, short
from modelops.platform import Platform
from modelops.store.records import AuditEntry, as_utc
from modelops.store.schema import Deployment, PredictionBatch

# Columns of the prediction log that are not the model's input (tasks.prediction_log.LOG_COLUMNS).
_LOG_COLUMNS = {"prediction_id", "event_time", "scored_at", "model", "version", "role", "batch_id", "prediction",
                "score", "latency_ms"}
# The role a logged row carries -> the deployment role that put it there (a shadow is the serving challenger).
_DEPLOYED_AS = {"champion": "champion", "challenger": "challenger", "shadow": "challenger"}


def _value(value: Any) -> Any:
    """A logged cell as JSON-ready data."""
    if isinstance(value, pd.Timestamp):
        return as_utc(value.to_pydatetime()).isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def logged_rows(platform: Platform, prediction_id: str, model: str | None) -> list[tuple[PredictionBatch, dict[str, Any]]]:
    """Every logged row with this prediction id, read from the Parquet log (only matching rows are read)."""
    from tasks.prediction_log import batch_files

    found = []
    for name in [model] if model else platform.store.prediction_models():
        for batch in platform.store.prediction_batches(name):
            for file in batch_files(batch):
                frame = pd.read_parquet(file, filters=[("prediction_id", "==", prediction_id)])
                found += [(batch, row) for row in frame.to_dict(orient="records")]
    return found


def in_force(entries: list[AuditEntry], at: datetime, stage: str, outcomes: set[str]) -> AuditEntry | None:
    """The newest decision (a record of `stage` with one of `outcomes`) made before `at`: the one that stood then."""
    return next((e for e in reversed(entries) if e.stage == stage and e.outcome in outcomes and e.at <= at), None)


def serving_deployment(deployments: list[Deployment], role: str, at: datetime) -> Deployment | None:
    wanted = _DEPLOYED_AS.get(role)
    return next((d for d in reversed(deployments) if d.role == wanted and d.deployed_at <= at
                 and (d.ended_at is None or d.ended_at > at)), None)


def _entry(entry: AuditEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action, "outcome": entry.outcome,
            "evidence": entry.evidence, "seq": entry.seq}


def _scoring(platform: Platform, batch: PredictionBatch, row: dict[str, Any], label: Any) -> dict[str, Any]:
    model, version, role = batch.model, batch.version, batch.role
    scored_at = as_utc(pd.Timestamp(row["scored_at"]).to_pydatetime())
    trail = [e for e in platform.store.audit_trail(model) if e.version == version]
    deployment = serving_deployment(platform.store.deployments(model, version), role, scored_at)
    lineage = next((r for r in platform.store.lineage(model) if r.version == version), None)
    governed = platform.store.governed_version(model, version)
    return {
        "model": model, "version": version, "role": role, "answered": role != "shadow",
        "kind": batch_kind(batch), "batch_id": batch.id, "source": batch.source,
        "event_time": _value(row.get("event_time")), "scored_at": scored_at.isoformat(),
        "prediction": _value(row.get("prediction")), "score": _value(row.get("score")),
        "latency_ms": _value(row.get("latency_ms")),
        "input": {k: _value(v) for k, v in row.items() if k not in _LOG_COLUMNS},
        "deployment": None if deployment is None else {
            "id": deployment.id, "role": deployment.role, "strategy": deployment.strategy,
            "deployed_at": deployment.deployed_at.isoformat(), "deployed_by": deployment.deployed_by,
            "ended_at": deployment.ended_at.isoformat() if deployment.ended_at else None,
            "ended_reason": deployment.ended_reason},
        "approval": _entry(in_force(trail, scored_at, "approve", set(ApprovalStatus))),
        # A per-model flow's own checks at approval (flight-delay's segment check), made before the decision.
        "approval_checks": [_entry(e) for e in trail if e.stage == "approve" and e.at <= scored_at
                            and e.outcome not in set(ApprovalStatus)],
        "validation": _entry(in_force(trail, scored_at, "validate", set(GateStatus))),
        "version_lineage": {
            "content_hash": governed.content_hash if governed else None,
            "train_start": lineage.train_start.isoformat() if lineage and lineage.train_start else None,
            "train_end": lineage.train_end.isoformat() if lineage and lineage.train_end else None,
            "data_hash": lineage.data_hash if lineage else None,
            "code_version": lineage.code_version if lineage else None,
            "mlflow_run_id": lineage.run_id if lineage else None},
        "ground_truth": label,
    }


def _labels(platform: Platform, models: set[str], prediction_id: str) -> dict[str, Any]:
    from tasks.prediction_log import ground_truth

    labels = {}
    for model in models:
        truth = ground_truth(platform, model)
        hit = truth[truth["prediction_id"].astype(str) == prediction_id]
        if not hit.empty:
            labels[model] = {"label": _value(hit["label"].iloc[-1]),
                             "received_at": _value(pd.Timestamp(hit["received_at"].iloc[-1]))}
    return labels


def explain_decision(platform: Platform, prediction_id: str, model: str | None = None) -> dict[str, Any]:
    """Every scoring of the prediction id, newest first; the first one answered is the decision that stands."""
    rows = logged_rows(platform, prediction_id, model)
    if not rows:
        where = f"{model}'s prediction log" if model else "the prediction log of any model"
        raise DataError(f"no prediction with id {prediction_id!r} in {where}",
                        "give the id a batch row carried in the spec's id column, or one the gateway answered in "
                        "prediction_ids (the gateway logs online predictions within seconds of answering)")
    labels = _labels(platform, {batch.model for batch, _ in rows}, prediction_id)
    scorings = sorted((_scoring(platform, batch, row, labels.get(batch.model)) for batch, row in rows),
                      key=lambda s: s["scored_at"], reverse=True)
    answered = next((s for s in scorings if s["answered"]), None)
    return {"prediction_id": prediction_id, "decision": answered, "scorings": scorings}


# --- text ---------------------------------------------------------------------------------------------------------
def _record_line(title: str, record: dict[str, Any] | None) -> list[str]:
    if record is None:
        return [f"  {title}: none recorded before the decision"]
    lines = [f"  {title}: {record['outcome']} ({record['action']}) {day_or_time(record['at'])} by {record['actor']}"]
    return lines + [f"      {key}: {text}" for key, text in evidence_items(record["evidence"]).items()
                    if key != "content_hash"]


def scoring_text(s: dict[str, Any]) -> list[str]:
    how = "answered" if s["answered"] else "scored in the shadow, not answered"
    lines = [f"{s['model']} v{s['version']} as {s['role']} ({how}), {s['kind']} scoring, log batch {s['batch_id']} "
             f"from {s['source']}",
             f"  decision: prediction {number(s['prediction'])}, score {number(s['score'])}; event time "
             f"{day_or_time(s['event_time'])}, scored {day_or_time(s['scored_at'])}"]
    d = s["deployment"]
    lines.append("  served by: " + (
        f"deployment {d['id']} @{d['role']} ({d['strategy']}) from {day_or_time(d['deployed_at'])} by "
        f"{d['deployed_by']} until " + (f"{day_or_time(d['ended_at'])} ({d['ended_reason']})" if d["ended_at"]
                                        else "now") if d else
        "no deployment: this version was named explicitly (score --version), not deployed in that role"))
    lines += _record_line("approval in force", s["approval"])
    for check in s["approval_checks"]:
        lines += _record_line("approval check", check)
    lines += _record_line("validation in force", s["validation"])
    v = s["version_lineage"]
    lines.append(f"  version lineage: content sha256 {short(v['content_hash'])}, trained on "
                 f"{day_or_time(v['train_start'])} .. {day_or_time(v['train_end'])} (data sha256 "
                 f"{short(v['data_hash'])}), code {v['code_version'] or '-'}, MLflow run {v['mlflow_run_id'] or '-'}"
                 f" (`modelops lineage {s['model']}/{s['version']}`)")
    lines.append(f"  input: {flat(s['input'])}")
    if s["ground_truth"]:
        lines.append(f"  ground truth: {number(s['ground_truth']['label'])} (received "
                     f"{day_or_time(s['ground_truth']['received_at'])})")
    return lines


def explanation_text(data: dict[str, Any]) -> str:
    scorings = data["scorings"]
    decision = data["decision"]
    head = (f"prediction {data['prediction_id']}: decided by {decision['model']} v{decision['version']} as "
            f"{decision['role']}" if decision else f"prediction {data['prediction_id']}: only shadow scorings")
    if len(scorings) > 1:
        head += f" ({len(scorings)} scorings logged, newest first)"
    return "\n".join([head, *(line for s in scorings for line in scoring_text(s))])
