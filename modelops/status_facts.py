"""What `modelops status` reports about many models, read in a fixed number of queries whatever their number.

Asked model by model, a status of 1,000 models made some 15,000 round trips to MLflow and the store. Here MLflow
is asked twice (every registered model with its aliases, every version with its tags) and the governance store
once per kind of fact and chunk of models; the report is then computed from these facts alone. The same pure
functions judge a single model for the stages (tasks.integrity), so both agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from modelops.catalog import CHALLENGER, CHAMPION, TAG_APPROVAL, TAG_SECURITY, TAG_STATE, TAG_VALIDATION
from modelops.lifecycle import VersionState
from modelops.platform import Platform
from modelops.store.records import GovernedVersion
from modelops.store.schema import MonitoringResult, MonitoringRun

ROLES = (CHAMPION, CHALLENGER)
# Up to this many models, MLflow is asked about each one (two calls each); beyond, about every model at once.
PER_MODEL_READS = 10


@dataclass(frozen=True)
class AliasFinding:
    role: str
    store: str | None
    mlflow: str | None

    def text(self, model: str) -> str:
        said = f"v{self.mlflow}" if self.mlflow else "no version"
        serving = f"v{self.store}" if self.store else "no version"
        return f"MLflow alias @{self.role} of {model} names {said}, but the governance store serves {serving}"


TagDifferences = dict[str, dict[str, tuple[str | None, str]]]  # {version: {tag: (MLflow says, the store says)}}


def alias_disagreements(aliases: Mapping[str, str], serving: Mapping[str, str | None]) -> list[AliasFinding]:
    """Where MLflow's aliases ({alias: version}) disagree with what the store says serves ({role: version})."""
    return [AliasFinding(role, serving.get(role), aliases.get(role)) for role in ROLES
            if aliases.get(role) != serving.get(role) and not (role == CHALLENGER and serving.get(role) is None)]


def tag_disagreements(governed: Sequence[GovernedVersion], tags: Mapping[str, Mapping[str, str]],
                      approvals: Mapping[str, str | None]) -> TagDifferences:
    """Where MLflow's mirror tags ({version: tags}) disagree with the store's verdicts ({version: approval})."""
    differences: TagDifferences = {}
    for version in governed:
        current = tags.get(version.version, {})
        wanted = {TAG_SECURITY: version.security_status, TAG_VALIDATION: version.validation_status,
                  TAG_APPROVAL: approvals.get(version.version)}
        if version.retired:
            wanted[TAG_STATE] = VersionState.retired.value
        elif current.get(TAG_STATE) == VersionState.retired:
            wanted[TAG_STATE] = VersionState.standby.value
        found = {k: (current.get(k), v) for k, v in wanted.items() if v is not None and current.get(k) != v}
        if found:
            differences[version.version] = found
    return differences


@dataclass(frozen=True)
class StatusFacts:
    """MLflow's and the store's facts about a set of models (absent keys: nothing known)."""

    models: list[str]  # the models asked about, or every registered model (sorted)
    aliases: dict[str, dict[str, str]]  # model -> alias -> version (MLflow)
    tags: dict[str, dict[str, dict[str, str]]]  # model -> version -> tags (MLflow)
    governed: dict[str, list[GovernedVersion]]  # model -> versions, oldest first (store)
    serving: dict[tuple[str, str], str]  # (model, role) -> version (store)
    approvals: dict[tuple[str, str], str]  # (model, version) -> approval status (store)
    first_served: dict[tuple[str, str], datetime]  # (model, version) -> first served as champion (store)
    monitoring: dict[tuple[str, str], tuple[MonitoringRun, list[MonitoringResult]]]  # (model, kind) -> newest run
    mlflow: bool = True  # False: MLflow was not read (aliases and tags unknown, its mirror not compared)

    def serving_of(self, model: str) -> dict[str, str | None]:
        return {role: self.serving.get((model, role)) for role in ROLES}

    def approvals_of(self, model: str) -> dict[str, str | None]:
        return {v.version: self.approvals.get((model, v.version)) for v in self.governed.get(model, [])}

    def alias_findings(self, model: str) -> list[AliasFinding]:
        return alias_disagreements(self.aliases.get(model, {}), self.serving_of(model))

    def tag_differences(self, model: str) -> TagDifferences:
        return tag_disagreements(self.governed.get(model, []), self.tags.get(model, {}), self.approvals_of(model))


def read_status_facts(platform: Platform, models: Sequence[str] | None, mlflow: bool = True) -> StatusFacts:
    """The facts about these models, or (None) about every model registered in MLflow. Without `mlflow`, the
    store's facts alone (None: every model it governs): MLflow's listing of every version is what a status of
    thousands of versions waits for, and the store decides everything the report states but the mirror's
    disagreements."""
    store = platform.store  # platform.catalog only where MLflow is read: opening it costs seconds
    aliases: dict[str, dict[str, str]]
    tags: dict[str, dict[str, dict[str, str]]]
    if not mlflow:
        aliases, tags = {}, {}
        models = store.governed_models() if models is None else models
    elif models is not None and len(models) <= PER_MODEL_READS:
        aliases = {model: platform.catalog.aliases_or_empty(model) for model in models}
        tags = {model: platform.catalog.version_tags(model).get(model, {}) for model in models}
    else:
        aliases = platform.catalog.aliases_of_models()  # the registered models themselves, with their aliases
        tags = platform.catalog.version_tags()
        if models is not None:
            aliases = {m: aliases[m] for m in models if m in aliases}
            tags = {m: tags[m] for m in models if m in tags}
    names = list(models) if models is not None else sorted(aliases)
    return StatusFacts(models=names, aliases=aliases, tags=tags, governed=store.governed_versions_of(names),
                       serving=store.serving_versions(names), approvals=store.approval_statuses(names),
                       first_served=store.first_served_of(names), monitoring=store.newest_monitoring(names),
                       mlflow=mlflow)
