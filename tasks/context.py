"""What a stage works on: a model's spec and one version's governance record, resolved once per stage run and
handed to every task of it (so no task re-reads the YAML or the store's record of the version)."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, load_spec
from modelops.store.records import GovernedVersion
from tasks.integrity import require_governed


@dataclass(frozen=True)
class ModelVersion:
    spec: LifecycleSpec
    governed: GovernedVersion

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.governed.version

    @property
    def chain(self) -> str:
        return self.governed.chain


def resolve_model_version(model: str, version: str) -> ModelVersion:
    """The spec (parsed once per file content) and the store's record of the version, provided the audit chain
    accounts for every gate row of it (tasks.integrity.require_governed)."""
    spec = load_spec(model)
    return ModelVersion(spec=spec, governed=require_governed(get_platform(), spec.name, version))
