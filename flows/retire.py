"""retire: take a version out of service for good; its artifacts and audit trail stay."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lineage_events import STAGE_HOOKS
from modelops.catalog import CHAMPION
from modelops.errors import ModelOpsError
from modelops.lifecycle import Stage
from modelops.platform import get_platform
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import retire_version_task
from tasks.stage_artifacts import publish, retirement_artifact


class Retired(BaseModel):
    model: str
    version: str
    dry_run: bool
    aliases_removed: list[str]
    changed: bool


@flow(name="retire", log_prints=True, **STAGE_HOOKS)
def retire(model: ModelName, version: Version, reason: str = "retired by operator", dry_run: bool = True,
           allow_champion: bool = False) -> Retired:
    """Marks the version retired in the store (for good: no tag or alias brings it back), ends its deployments and
    removes its MLflow aliases. `dry_run` (the default) only says what would happen. Retiring the champion leaves
    the model without one, so it needs `allow_champion`."""
    handed, result = hand_over(Stage.retire, dict(model=model, version=version, reason=reason, dry_run=dry_run,
                               allow_champion=allow_champion))
    return result if handed else standard_retire(resolve_model_version(model, version), reason, dry_run,
                                                 allow_champion)


def standard_retire(mv: ModelVersion, reason: str, dry_run: bool, allow_champion: bool) -> Retired:
    """Retire (or, dry, say what would be retired), shown in the UI as the artifact `retirement-<model>`."""
    retired = _retire(mv, reason, dry_run, allow_champion)
    publish("retirement", [retirement_artifact(mv.model, mv.version, reason, dry_run, retired.aliases_removed,
                                               retired.changed)])
    return retired


def _retire(mv: ModelVersion, reason: str, dry_run: bool, allow_champion: bool) -> Retired:
    platform = get_platform()
    aliases = sorted(alias for alias, named in platform.catalog.aliases_or_empty(mv.model).items()
                     if named == mv.version)
    unchanged = Retired(model=mv.model, version=mv.version, dry_run=dry_run, aliases_removed=[], changed=False)
    if mv.governed.retired and not aliases:
        return unchanged
    if platform.store.serving_version(mv.model, CHAMPION) == mv.version and not allow_champion:
        raise ModelOpsError(f"{mv.model} v{mv.version} is the serving champion",
                            "deploy another version as champion first, or pass allow_champion=True")
    if dry_run:
        print(f"dry run: would remove aliases {aliases} from {mv.model} v{mv.version} and retire it")
        return unchanged.model_copy(update={"aliases_removed": aliases})
    changed = retire_version_task(platform, mv, reason, aliases)
    print(f"{mv.model} v{mv.version} retired ({reason})")
    return Retired(model=mv.model, version=mv.version, dry_run=False, aliases_removed=aliases, changed=changed)
