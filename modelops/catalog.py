"""The model catalog: every MLflow call of the platform goes through `MlflowCatalog`.

Versions are named by aliases (`champion`, `challenger`) and described by tags; registry stages are never used.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from modelops.errors import CatalogError
from modelops.lifecycle import PRE_SERVING_STATES, Role, VersionState

CHAMPION = Role.champion
CHALLENGER = Role.challenger

# Tags every platform-managed version carries so that the MLflow UI shows them. They mirror the governance store
# and are never read to decide anything: anyone with MLflow access can edit them.
TAG_STATE = "lifecycle_state"  # a modelops.lifecycle.VersionState
TAG_FINGERPRINT = "modelops.fingerprint"
TAG_SECURITY = "security_scan"  # a GateStatus
TAG_VALIDATION = "validation_status"  # a GateStatus
TAG_APPROVAL = "approval_status"  # an ApprovalStatus
TAG_VALIDATION_RUN = "validation_run_id"
TAG_RETIRED_REASON = "retired_reason"
# Tags of the MLflow runs the platform logs.
RUN_TAG_MODEL = "modelops.model"
RUN_TAG_STAGE = "modelops.stage"
RUN_TAG_VERSION = "modelops.version"


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def state_update(self, state: VersionState) -> dict[str, str]:
        """The lifecycle_state tag to write for a pre-serving stage's outcome (none once the version served)."""
        return {TAG_STATE: state} if self.tags.get(TAG_STATE, VersionState.registered) in PRE_SERVING_STATES else {}


@dataclass(frozen=True)
class RunArtifact:
    """A file kept as an artifact of an MLflow run: where the MLflow UI shows it."""

    experiment_id: str
    run_id: str
    path: str  # inside the run's artifacts

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.path}"

    def ui_page(self, mlflow_ui: str) -> str:
        """The MLflow UI's page of this artifact (MLflow 3's routes): an HTML file renders there, in a sandboxed
        frame, whereas the server's own artifact download sends it as an attachment."""
        from urllib.parse import quote

        return (f"{mlflow_ui.rstrip('/')}/#/experiments/{quote(str(self.experiment_id), safe='')}/runs/"
                f"{quote(self.run_id, safe='')}/artifacts/{quote(self.path)}")


# Versions MLflow returns per page of search_model_versions (its own ceiling is 200,000).
VERSION_PAGE = 50_000


class MlflowCatalog:
    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def open(self) -> None:
        """Create (or upgrade) MLflow's tables now rather than on some later first call."""
        self.client.search_experiments(max_results=1)  # the tracking store
        self.client.search_registered_models(max_results=1)  # the registry store, a second connection

    def activate(self) -> None:
        """Point MLflow's fluent API (logging, loading, artifact download) at this catalog."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    # --- experiments and logging ----------------------------------------------------------------------
    def experiment_id(self, model: str) -> str:
        name = f"modelops/{model}"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        # An explicit artifact location keeps artifacts under the state directory, not ./mlruns.
        location = (self.artifact_root / model).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location, tags={RUN_TAG_MODEL: model})

    def log_sklearn_model(self, model: str, estimator: Any, *, input_example: Any, predict_fn: str,
                          params: dict[str, Any], metrics: dict[str, float], run_tags: dict[str, str],
                          pip_requirements: list[str]) -> tuple[str, str]:
        """Log a scikit-learn estimator (skops format, signature, input example); returns (run_id, model_uri)."""
        import mlflow
        import mlflow.sklearn
        import skops.io
        from mlflow.models import infer_signature

        output = getattr(estimator, predict_fn)(input_example)
        signature = infer_signature(input_example, output)
        # The types this very estimator needs; the validation stage re-scans the saved file against the spec.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
        # MLflow loads the file it just wrote to check the input example against it. That file holds the
        # estimator trained in this very process, so loading it is safe; everywhere else deserialisation stays off
        # and models load only through the security scan (tasks/security.py).
        with _env("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true"):
            return self.log_model_run(model, params, metrics, run_tags, lambda: mlflow.sklearn.log_model(
                estimator, name="model", signature=signature, input_example=input_example,
                pip_requirements=pip_requirements, serialization_format="skops", skops_trusted_types=trusted,
                pyfunc_predict_fn=predict_fn,
            ))

    def log_model_run(self, model: str, params: dict[str, Any], metrics: dict[str, float], run_tags: dict[str, str],
                      log: Callable[[], Any]) -> tuple[str, str]:
        """One training run: its params, metrics and tags, and the model `log()` logs inside it (any kind's
        flavor, tasks.model_kinds); returns (run_id, model_uri)."""
        import mlflow

        self.activate()
        with mlflow.start_run(experiment_id=self.experiment_id(model), tags=run_tags) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            if metrics:
                mlflow.log_metrics(metrics)
            info = log()
        return run.info.run_id, info.model_uri

    def log_validation_run(self, model: str, version: str, *, metrics: dict[str, float], report: dict[str, Any],
                           expectations: list[dict[str, Any]], reference_file: Path, tags: dict[str, str],
                           files: Sequence[tuple[Path, str]] = ()) -> str:
        """One MLflow run per validation: its report, expectation suite, the reference sample (a Parquet file)
        monitoring reuses and further files, each under its artifact folder. Returns the run id."""
        import mlflow

        self.activate()
        with mlflow.start_run(experiment_id=self.experiment_id(model), run_name=f"validate-v{version}",
                              tags={RUN_TAG_MODEL: model, RUN_TAG_STAGE: "validate", RUN_TAG_VERSION: version,
                                    **tags}) as run:
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
            mlflow.log_dict(report, "validation/report.json")
            mlflow.log_dict({"expectations": expectations}, "data_quality/expectations.json")
            mlflow.log_artifact(str(reference_file), "reference")
            for path, folder in files:
                mlflow.log_artifact(str(path), folder)
        return run.info.run_id

    def log_artifact_dict(self, run_id: str, payload: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, payload, artifact_file)

    def log_run_file(self, run_id: str, local_file: Path, artifact_dir: str) -> RunArtifact:
        """Keep a file as an artifact of an existing (finished) run, under `artifact_dir`, by its own name."""
        self.client.log_artifact(run_id, str(local_file), artifact_dir)
        experiment_id = self.client.get_run(run_id).info.experiment_id
        return RunArtifact(experiment_id, run_id, f"{artifact_dir.strip('/')}/{local_file.name}")

    def load_artifact_dict(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        import mlflow.artifacts

        self.activate()
        try:
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
        except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            return None

    # --- registry -------------------------------------------------------------------------------------
    def ensure_registered_model(self, model: str, description: str, tags: dict[str, str]) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model)
        except MlflowException:
            try:
                self.client.create_registered_model(model, tags=tags, description=description)
                return
            except MlflowException:
                self.client.get_registered_model(model)  # created by a concurrent registration: fine
        for key, value in tags.items():
            self.client.set_registered_model_tag(model, key, value)

    def register(self, model: str, model_uri: str, run_id: str | None, tags: dict[str, str]) -> str:
        version = self.client.create_model_version(model, source=model_uri, run_id=run_id, tags=tags)
        return str(version.version)

    def versions(self, model: str) -> list[VersionInfo]:
        from mlflow.exceptions import MlflowException

        try:
            aliases = self.aliases(model)
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        found = self.client.search_model_versions(f"name='{model}'")
        infos = [VersionInfo(model=model, version=str(v.version), run_id=v.run_id, source=v.source, tags=dict(v.tags),
                             aliases=tuple(sorted(by_version.get(str(v.version), [])))) for v in found]
        return sorted(infos, key=lambda info: int(info.version))

    def version(self, model: str, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(model, version)
        except MlflowException as exc:
            raise CatalogError(f"model {model!r} has no version {version!r} in the registry",
                               "list versions with `modelops status`, or register one") from exc
        aliases = tuple(sorted(a for a, v in self.aliases(model).items() if v == str(version)))
        return VersionInfo(model=model, version=str(found.version), run_id=found.run_id, source=found.source,
                           tags=dict(found.tags), aliases=aliases)

    def version_tags(self, model: str | None = None) -> dict[str, dict[str, dict[str, str]]]:
        """{model: {version: tags}} of every registered version (or one model's), page by page: one round trip
        per page where versions() of each model would take two per model."""
        found: dict[str, dict[str, dict[str, str]]] = {}
        token = None
        while True:
            page = self.client.search_model_versions(f"name='{model}'" if model else "", max_results=VERSION_PAGE,
                                                     page_token=token)
            for v in page:
                found.setdefault(v.name, {})[str(v.version)] = dict(v.tags)
            token = page.token
            if not token:
                return found

    def aliases_of_models(self) -> dict[str, dict[str, str]]:
        """{model: {alias: version}} of every registered model, read with the models themselves (paged)."""
        return {m.name: {alias: str(version) for alias, version in (m.aliases or {}).items()}
                for m in self._registered_models()}

    def set_tags(self, model: str, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model, version, key, str(value))

    def aliases(self, model: str) -> dict[str, str]:
        # search_model_versions leaves `aliases` empty: the registered model is the source of truth.
        return {alias: str(version) for alias, version in self.client.get_registered_model(model).aliases.items()}

    def has_model(self, model: str) -> bool:
        """Whether MLflow has a registered model of this name."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model)
        except MlflowException:
            return False
        return True

    def aliases_or_empty(self, model: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return self.aliases(model)
        except MlflowException:
            return {}

    def set_model_tag(self, model: str, key: str, value: str) -> bool:
        """Tag a registered model; False when MLflow has no such registered model (yet)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.set_registered_model_tag(model, key, value)
        except MlflowException:
            return False
        return True

    def model_tags(self, key: str) -> dict[str, str]:
        """{registered model: value} of one tag, for every registered model that has it."""
        return {m.name: m.tags[key] for m in self._registered_models() if key in (m.tags or {})}

    def _registered_models(self) -> list[Any]:
        """Every registered model, page by page (MLflow returns at most 100 at a time)."""
        found, token = [], None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            found += list(page)
            token = page.token
            if not token:
                return found

    def version_for_alias(self, model: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.aliases(model).get(alias)
        except MlflowException:
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model, alias, version)

    def delete_alias(self, model: str, alias: str) -> None:
        self.client.delete_registered_model_alias(model, alias)

    def model_names(self) -> list[str]:
        return sorted(m.name for m in self._registered_models())

    # --- artifacts and loading ------------------------------------------------------------------------
    def download_run_artifacts(self, run_id: str, artifact_path: str, dst: Path) -> Path:
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(dst),
                                                        tracking_uri=self.tracking_uri))

    def download_model(self, model: str, version: str, dst: Path) -> Path:
        import mlflow.artifacts

        self.activate()
        dst.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{version}",
                                                        dst_path=str(dst), tracking_uri=self.tracking_uri))



def signature_columns(signature: dict[str, Any] | None, what: str) -> list[tuple[str, str]]:
    """(name, MLflow type) of each input of an MLmodel's signature (its `signature` mapping)."""
    from mlflow.models.signature import ModelSignature

    parsed = ModelSignature.from_dict(signature) if signature else None
    if parsed is None or parsed.inputs is None:
        raise CatalogError(f"{what} has no input signature",
                           "log the model with a signature (mlflow.models.infer_signature)")
    return [(col.name, col.type.name if hasattr(col.type, "name") else str(col.type))
            for col in parsed.inputs.inputs]


@contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
