"""retire: take a version out of service for good; its artifacts and audit trail stay."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHAMPION, TAG_STATE
from modelops.errors import ModelOpsError
from modelops.flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import load_spec
from modelops.store.records import utcnow
from modelops.tasks.audit import record_stage


class Retired(BaseModel):
    model: str
    version: str
    dry_run: bool
    aliases_removed: list[str]
    changed: bool


@flow(name="retire", log_prints=True)
def retire(model: ModelName, version: Version, reason: str = "retired by operator", dry_run: bool = True,
           allow_champion: bool = False) -> Retired:
    """Removes the version's aliases, marks it retired and ends its deployments. `dry_run` (the default) only
    says what would happen. Retiring the champion leaves the model without one, so it needs `allow_champion`."""
    spec = load_spec(model)
    platform = get_platform()
    catalog = platform.catalog
    info = catalog.version(spec.name, version)
    if info.retired and not info.aliases and platform.store.has_audit(spec.name, "retire", version):
        return Retired(model=model, version=version, dry_run=dry_run, aliases_removed=[], changed=False)
    if CHAMPION in info.aliases and not allow_champion:
        raise ModelOpsError(f"{model} v{version} is the serving champion",
                            "deploy another version as champion first, or pass allow_champion=True")
    if dry_run:
        print(f"dry run: would remove aliases {list(info.aliases)} from {model} v{version} and retire it")
        return Retired(model=model, version=version, dry_run=True, aliases_removed=list(info.aliases), changed=False)
    for alias in info.aliases:
        catalog.delete_alias(spec.name, alias)
    if not info.retired:
        catalog.set_tags(spec.name, version, {TAG_STATE: "retired", "retired_at": utcnow().isoformat(),
                                              "retired_reason": reason})
    ended = platform.store.end_deployments(spec.name, version, f"retired: {reason}")
    record_stage(stage="retire", action="retire-version", model=spec.name, version=version, outcome="retired",
                 evidence={"reason": reason, "aliases_removed": list(info.aliases), "deployments_ended": ended},
                 event=events.RETIRED)
    print(f"{model} v{version} retired ({reason})")
    return Retired(model=model, version=version, dry_run=False, aliases_removed=list(info.aliases), changed=True)
