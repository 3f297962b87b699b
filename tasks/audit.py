"""Recording a stage's outcome: its state change and audit record in one transaction, the chain head kept outside
the store, and one Prefect event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelops.events import emit_model_event
from modelops.files import replace_atomically
from modelops.platform import Platform, current_actor, get_platform
from modelops.store.audit_chain import ChainHead, ChainVerdict, parse_head, verify_chain
from modelops.store.records import AuditEntry, AuditFact, Change
from tasks import as_task

HEAD_TAG = "modelops.audit_head"


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def head_file(platform: Platform) -> Path:
    return platform.settings.home / "audit-head.json"


def publish_head(platform: Platform, entry: AuditEntry) -> None:
    """Keep the newest chain link outside the store, in two places a rewrite of the audit table does not reach:
    a file in the state directory and a tag on the MLflow registered model the record is about."""
    path = head_file(platform)
    current = read_file_head(platform)
    if current is None or entry.seq > current.seq:
        text = json.dumps({"seq": entry.seq, "hash": entry.record_hash}).encode()
        replace_atomically(path, lambda handle: handle.write(text))
    # A model not registered in MLflow (yet) has no tag to carry it: the file keeps the head.
    platform.catalog.set_model_tag(entry.model, HEAD_TAG, f"{entry.seq}:{entry.record_hash}")


def read_file_head(platform: Platform) -> ChainHead | None:
    path = head_file(platform)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        return parse_head(f"{payload['seq']}:{payload['hash']}", str(path))
    except (ValueError, KeyError, TypeError):
        return ChainHead(-1, "unreadable", str(path))


def outside_heads(platform: Platform) -> list[ChainHead]:
    """Every copy of the chain head kept outside the store."""
    heads = [head for head in [read_file_head(platform)] if head is not None]
    for model, text in platform.catalog.model_tags(HEAD_TAG).items():
        heads.append(parse_head(text, f"MLflow tag {HEAD_TAG} of {model}") or
                     ChainHead(-1, "unreadable", f"MLflow tag {HEAD_TAG} of {model}"))
    return heads


def missing_heads(platform: Platform, chained_models: set[str]) -> list[str]:
    """Once records exist, every copy of the head must exist too: deleting a copy must not switch its check off."""
    missing = [] if read_file_head(platform) is not None else [f"the head file {head_file(platform)}"]
    tagged = set(platform.catalog.model_tags(HEAD_TAG))
    missing += [f"the {HEAD_TAG} tag of MLflow registered model {model}"
                for model in sorted(chained_models & set(platform.catalog.model_names()) - tagged)]
    return missing


def verify_audit(platform: Platform) -> ChainVerdict:
    rows = platform.store.audit_chain()
    verdict = verify_chain(rows, outside_heads(platform))
    if not verdict.ok:
        return verdict
    models = {row.model for row in rows}
    missing = missing_heads(platform, models) if rows else []
    if missing:
        return ChainVerdict(False, verdict.records, f"{'; '.join(missing)} is gone, though the chain has "
                                                    f"{verdict.records} records: a copy of the head was removed")
    unbacked = [problem for model in sorted(models | set(platform.catalog.model_names()))
                for problem in platform.store.unbacked_state(model)]
    if unbacked:
        return ChainVerdict(False, verdict.records, "gate rows no audit record accounts for (written around the "
                                                    f"platform): {'; '.join(unbacked)}")
    return verdict


def record_stage(*, stage: str, action: str, model: str, version: str | None, outcome: str,
                 evidence: dict[str, Any], event: str | None, actor: str | None = None,
                 labels: dict[str, str] | None = None, change: Change | None = None) -> AuditEntry | None:
    """Apply the stage's state change and append its audit record together, then emit its event. When the change
    finds nothing to do (the stage ran before), nothing is recorded or emitted, so re-running a stage does not
    restart the stages its event triggers."""
    platform = get_platform()
    entry = platform.store.record(AuditFact(actor=actor or current_actor(), stage=stage, action=action, model=model,
                                            version=version, outcome=outcome, evidence=evidence, event=event,
                                            flow_run_id=_flow_run_id()), change)
    if entry is None:
        return None
    publish_head(platform, entry)
    if event:
        emit_model_event(event, model, version, {"outcome": outcome, "stage": stage}, labels)
    return entry


record_stage_task = as_task(record_stage)
