"""retire: take a version out of service for good; its artifacts and audit trail stay."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHAMPION, TAG_STATE
from modelops.errors import ModelOpsError
from flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import load_spec
from tasks.audit import record_stage
from tasks.integrity import require_governed


class Retired(BaseModel):
    model: str
    version: str
    dry_run: bool
    aliases_removed: list[str]
    changed: bool


@flow(name="retire", log_prints=True)
def retire(model: ModelName, version: Version, reason: str = "retired by operator", dry_run: bool = True,
           allow_champion: bool = False) -> Retired:
    """Marks the version retired in the store (for good: no tag or alias brings it back), ends its deployments and
    removes its MLflow aliases. `dry_run` (the default) only says what would happen. Retiring the champion leaves
    the model without one, so it needs `allow_champion`."""
    spec = load_spec(model)
    platform = get_platform()
    catalog, store = platform.catalog, platform.store
    governed = require_governed(platform, spec.name, version)
    aliases = sorted(alias for alias, named in catalog.aliases_or_empty(spec.name).items() if named == version)
    if governed.retired and not aliases:
        return Retired(model=model, version=version, dry_run=dry_run, aliases_removed=[], changed=False)
    if store.serving_version(spec.name, CHAMPION) == version and not allow_champion:
        raise ModelOpsError(f"{model} v{version} is the serving champion",
                            "deploy another version as champion first, or pass allow_champion=True")
    if dry_run:
        print(f"dry run: would remove aliases {aliases} from {model} v{version} and retire it")
        return Retired(model=model, version=version, dry_run=True, aliases_removed=aliases, changed=False)
    entry = record_stage(stage="retire", action="retire-version", model=spec.name, version=version,
                         outcome="retired", evidence={"reason": reason, "aliases_removed": aliases},
                         event=events.RETIRED, change=store.retire_version(spec.name, version, reason))
    for alias in aliases:
        catalog.delete_alias(spec.name, alias)
    catalog.set_tags(spec.name, version, {TAG_STATE: "retired", "retired_reason": reason})
    print(f"{model} v{version} retired ({reason})")
    return Retired(model=model, version=version, dry_run=False, aliases_removed=aliases, changed=entry is not None)
