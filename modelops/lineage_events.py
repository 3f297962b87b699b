"""OpenLineage run events of every stage run: START when it runs, COMPLETE or FAIL when it ends, with the datasets
it read and wrote and facets that say what it did.

Emitted from one place: Prefect state hooks (`STAGE_HOOKS`) every stage flow passes to `@flow`, so a stage run by
the CLI, a deployment trigger, a schedule or as a sub-flow of retrain is covered alike. Events go to a JSON Lines
file under the state directory (`<state home>/lineage/openlineage.jsonl`), or, when MODELOPS_OPENLINEAGE_URL is set,
to that OpenLineage HTTP endpoint (Marquez, or any other consumer). A lineage event that cannot be delivered is
logged and never fails the stage: lineage describes the work, it must not stop it.

Dataset names (namespace MODELOPS_OPENLINEAGE_NAMESPACE, `modelops` by default): `data/<model>` (a training window:
its content hash is the dataset version), `models/<model>/<version>` (its pinned content hash is the version),
`validations/..`, `approvals/..`, `serving/<model>/<role>`, `predictions/<model>/<batch id>`, `monitoring/<model>`;
batch files are `file` datasets named by their path.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import attr

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent

    from modelops.platform import Platform

log = logging.getLogger("modelops.lineage")

URL_ENV = "MODELOPS_OPENLINEAGE_URL"
ENDPOINT_ENV = "MODELOPS_OPENLINEAGE_ENDPOINT"  # default api/v1/lineage (Marquez's)
API_KEY_ENV = "MODELOPS_OPENLINEAGE_API_KEY"  # sent as a bearer token; from the environment only, never a config
NAMESPACE_ENV = "MODELOPS_OPENLINEAGE_NAMESPACE"
PRODUCER = "modelops"
# A lineage endpoint that is down must not hold a stage for long: one retry, five seconds each.
HTTP_TIMEOUT_SECONDS = 5.0
HTTP_RETRY = {"total": 1, "connect": 1, "read": 1, "backoff_factor": 0.2, "status_forcelist": [500, 502, 503, 504],
              "allowed_methods": ["HEAD", "POST"]}


def namespace() -> str:
    return os.environ.get(NAMESPACE_ENV) or "modelops"


def events_file(home: Path) -> Path:
    return home / "lineage" / "openlineage.jsonl"


def _facet_classes() -> tuple[type, type]:
    """The platform's own facets (attrs classes, as OpenLineage's are), defined on first use: importing
    openlineage costs time no CLI command that emits nothing should pay."""
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    @attr.define
    class ModelopsRunFacet(RunFacet):  # type: ignore[misc]
        """What the stage run was asked to do and what it did (the flow's result), with who ran it."""

        stage: str
        model: str | None
        version: str | None
        actor: str
        prefectFlowRunId: str  # noqa: N815 - OpenLineage facets are camelCase
        parameters: dict[str, Any] = attr.field(factory=dict)
        result: dict[str, Any] | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return "urn:modelops:facets:ModelopsRunFacet"

    @attr.define
    class ModelopsDatasetFacet(DatasetFacet):  # type: ignore[misc]
        """What the platform knows of a dataset: a training window, a version's fingerprint, a verdict."""

        properties: dict[str, Any] = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return "urn:modelops:facets:ModelopsDatasetFacet"

    return ModelopsRunFacet, ModelopsDatasetFacet


_FACETS: tuple[type, type] | None = None


def facets() -> tuple[type, type]:
    global _FACETS
    if _FACETS is None:
        _FACETS = _facet_classes()
    return _FACETS


@lru_cache(maxsize=8)
def _client(url: str | None, endpoint: str, api_key: str | None, path: str) -> OpenLineageClient:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

    if url:
        auth = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else None
        config = HttpConfig(url=url, endpoint=endpoint, timeout=HTTP_TIMEOUT_SECONDS, retry=dict(HTTP_RETRY),
                            **({"auth": auth} if auth else {}))
        return OpenLineageClient(transport=HttpTransport(config))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=path, append=True)))


def without_credentials(url: str) -> str:
    """The URL as a log may show it: user and password (if the URL carries any) left out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Stage runs of several processes append to one file: one whole event (one line) at a time.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def emit(home: Path, event: RunEvent) -> bool:
    """Send one event; False (and a warning in the log) when it could not be delivered. Never raises."""
    url = os.environ.get(URL_ENV) or None
    path = events_file(home)
    try:
        client = _client(url, os.environ.get(ENDPOINT_ENV) or "api/v1/lineage", os.environ.get(API_KEY_ENV) or None,
                         str(path))
        if url:
            client.emit(event)
        else:
            with _file_lock(path):
                client.emit(event)
    except Exception as exc:  # noqa: BLE001 - any failure to deliver lineage is logged, never raised
        log.warning("OpenLineage %s event of %s (run %s) not delivered to %s: %s: %s; the stage goes on",
                    event.eventType.value if event.eventType else "?", event.job.name, event.run.runId,
                    without_credentials(url) if url else path, type(exc).__name__, exc)
        return False
    return True


# --- datasets of each stage ----------------------------------------------------------------------------------------
def _dataset(kind: type, name: str, *, version: str | None = None, properties: dict[str, Any] | None = None,
             space: str | None = None) -> Any:
    from openlineage.client.facet_v2 import dataset_version_dataset

    _, dataset_facet = facets()
    found: dict[str, Any] = {}
    if version:
        found["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)
    if properties:
        found["modelops"] = dataset_facet(properties=_plain(properties))
    return kind(namespace=space or namespace(), name=name, facets=found)


def _plain(value: Any) -> Any:
    """JSON-ready: dates and other objects as text."""
    import json

    return json.loads(json.dumps(value, default=str))


def model_dataset(platform: Platform | None, kind: type, model: str, version: str | None) -> Any:
    if not version:
        return None
    governed = platform.store.governed_version(model, version) if platform else None
    if governed is None:
        return _dataset(kind, f"models/{model}/{version}")
    return _dataset(kind, f"models/{model}/{version}", version=governed.content_hash,
                    properties={"fingerprint": governed.fingerprint, "source": governed.source,
                                "registered_by": governed.registered_by})


def _training_data(platform: Platform, model: str, version: str) -> Any:
    from openlineage.client.event_v2 import InputDataset

    rows = {r.version: r for r in platform.store.lineage(model)}
    lineage = rows.get(version)
    if lineage is None or lineage.source != "trained":
        return None
    registered = next((e for e in platform.store.audit_trail(model) if e.stage == "register"
                       and e.version == version), None)
    evidence = registered.evidence if registered else {}
    return _dataset(InputDataset, f"data/{model}", version=lineage.data_hash,
                    properties={"loader": evidence.get("loader"), "window_start": lineage.train_start,
                                "window_end": lineage.train_end, "rows": evidence.get("rows")})


def _file(kind: type, path: str | None) -> Any:
    return _dataset(kind, str(Path(path).resolve()), space="file") if path else None


def stage_datasets(platform: Platform | None, stage: str, parameters: dict[str, Any],
                   result: dict[str, Any] | None) -> tuple[list[InputDataset], list[OutputDataset]]:
    """What a stage run read and wrote: from its parameters alone at START, from its result too at the end."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    model = parameters.get("model")
    r = result or {}
    version = r.get("version") or parameters.get("version")
    inputs: list[Any] = []
    outputs: list[Any] = []
    if not model:
        return [], []
    if stage == "register":
        if result and platform and version:
            inputs.append(_training_data(platform, model, version))
        outputs.append(model_dataset(platform, OutputDataset, model, version) if result else None)
    elif stage == "validate":
        inputs.append(model_dataset(platform, InputDataset, model, version))
        if result:
            outputs.append(_dataset(OutputDataset, f"validations/{model}/{version}", properties={
                "passed": r.get("passed"), "failures": r.get("failures"), "metrics": r.get("metrics")}))
    elif stage == "approve":
        inputs += [model_dataset(platform, InputDataset, model, version),
                   _dataset(InputDataset, f"validations/{model}/{version}")]
        if result:
            outputs.append(_dataset(OutputDataset, f"approvals/{model}/{version}",
                                    properties={"status": r.get("status"), "reasons": r.get("reasons")}))
    elif stage == "deploy":
        inputs += [model_dataset(platform, InputDataset, model, version),
                   _dataset(InputDataset, f"approvals/{model}/{version}")]
        if result:
            outputs.append(_dataset(OutputDataset, f"serving/{model}/{r.get('role')}", version=version,
                                    properties={"previous": r.get("previous"), "changed": r.get("changed")}))
    elif stage == "score":
        inputs += [_file(InputDataset, parameters.get("input_path")),
                   model_dataset(platform, InputDataset, model, version)]
        if result:
            outputs += [_dataset(OutputDataset, f"predictions/{model}/{r.get('batch_id')}",
                                 properties={"rows": r.get("rows"), "version": version,
                                             "challenger": r.get("challenger")}),
                        _file(OutputDataset, r.get("output_path"))]
    elif stage == "monitor":
        inputs.append(_dataset(InputDataset, f"predictions/{model}"))
        if result:
            outputs.append(_dataset(OutputDataset, f"monitoring/{model}", properties={
                "version": version, "verdict": r.get("verdict"), "rows": r.get("rows")}))
    elif stage == "retrain":
        inputs += [_dataset(InputDataset, f"predictions/{model}"),
                   model_dataset(platform, InputDataset, model, r.get("champion_before"))]
        if result:
            outputs.append(model_dataset(platform, OutputDataset, model, r.get("challenger")))
    elif stage == "retire":
        inputs.append(model_dataset(platform, InputDataset, model, version))
    return [d for d in inputs if d is not None], [d for d in outputs if d is not None]


# --- the events ---------------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _parent_facet(parent_run_id: str | None, parent_job: str | None) -> dict[str, Any]:
    if not parent_run_id or not parent_job:
        return {}
    from openlineage.client.facet_v2 import parent_run

    return {"parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=parent_run_id),
                                                job=parent_run.Job(namespace=namespace(), name=parent_job))}


def job_name(stage: str, model: str | None) -> str:
    """One OpenLineage job per model and stage: `flight-delay.register`."""
    return f"{model}.{stage}" if model else stage


def run_event(event_type: str, *, stage: str, run_id: str, parameters: dict[str, Any], actor: str,
              result: dict[str, Any] | None = None, error: str | None = None,
              parent: tuple[str | None, str | None] = (None, None),
              datasets: tuple[list[Any], list[Any]] = ([], [])) -> RunEvent:
    """One OpenLineage run event of a stage run (event_type START, COMPLETE or FAIL)."""
    import openlineage.client
    import prefect
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job, processing_engine_run

    run_facet, _ = facets()
    model = parameters.get("model")
    version = (result or {}).get("version") or parameters.get("version")
    run_facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=prefect.__version__, name="prefect",
            openlineageAdapterVersion=getattr(openlineage.client, "__version__", None)),
        "modelops": run_facet(stage=stage, model=model, version=version, actor=actor, prefectFlowRunId=run_id,
                              parameters=_plain(parameters), result=_plain(result) if result is not None else None),
        **_parent_facet(*parent),
    }
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error,
                                                                            programmingLanguage="python")
    job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="PREFECT",
                                                          jobType="FLOW")}
    inputs, outputs = datasets
    return RunEvent(eventType=RunState(event_type), eventTime=_now(), producer=PRODUCER,
                    run=Run(runId=run_id, facets=run_facets),
                    job=Job(namespace=namespace(), name=job_name(stage, model), facets=job_facets),
                    inputs=inputs, outputs=outputs)


# --- Prefect state hooks: every stage flow passes STAGE_HOOKS to @flow --------------------------------------------
# The job of each stage run started in this process, so a sub-flow's events name their parent's job.
_JOBS: dict[str, str] = {}


def _parent_of(flow_run: Any) -> tuple[str | None, str | None]:
    """(run id, job name) of the flow run that started this one as a sub-flow (retrain's register, validate..)."""
    if flow_run.parent_task_run_id is None:
        return None, None
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        parent = str(client.read_task_run(flow_run.parent_task_run_id).flow_run_id)
    return parent, _JOBS.get(parent)


def _result_data(state: Any) -> dict[str, Any] | None:
    from modelops.cli_output import as_data

    data = as_data(state.result(raise_on_failure=False))
    return data if isinstance(data, dict) else {"value": data}


def stage_event(event_type: str, flow: Any, flow_run: Any, state: Any) -> None:
    """Build and emit the event of a stage run's state change. Never raises: a hook that failed would be logged by
    Prefect anyway, but lineage must not even look like a failure of the stage."""
    try:
        from modelops.platform import current_actor, get_platform

        platform = get_platform()
        stage, run_id, parameters = flow.name, str(flow_run.id), dict(flow_run.parameters or {})
        if event_type == "START":
            _JOBS[run_id] = job_name(stage, parameters.get("model"))
        result = _result_data(state) if event_type == "COMPLETE" else None
        error = (state.message or state.name) if event_type == "FAIL" else None
        event = run_event(event_type, stage=stage, run_id=run_id, parameters=parameters, actor=current_actor(),
                          result=result, error=error, parent=_parent_of(flow_run),
                          datasets=stage_datasets(platform, stage, parameters, result))
        emit(platform.settings.home, event)
        if event_type != "START":
            _JOBS.pop(run_id, None)  # a long-running runner must not keep every run it ever ran
    except Exception as exc:  # noqa: BLE001 - see above
        log.warning("OpenLineage %s event of %s run %s not built: %s: %s; the stage goes on", event_type,
                    getattr(flow, "name", "?"), getattr(flow_run, "id", "?"), type(exc).__name__, exc)


def _on_running(flow: Any, flow_run: Any, state: Any) -> None:
    stage_event("START", flow, flow_run, state)


def _on_completion(flow: Any, flow_run: Any, state: Any) -> None:
    stage_event("COMPLETE", flow, flow_run, state)


def _on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    stage_event("FAIL", flow, flow_run, state)


STAGE_HOOKS: dict[str, Any] = {"on_running": [_on_running], "on_completion": [_on_completion],
                               "on_failure": [_on_failure], "on_crashed": [_on_failure]}
