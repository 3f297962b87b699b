"""validate: put a registered version through the spec's gates and record the verdict with its evidence."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import TAG_APPROVAL, TAG_SECURITY, TAG_VALIDATION
from modelops.errors import RetiredVersionError
from flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.recovery import owner_tags
from modelops.spec import load_spec
from tasks.approval import APPROVED
from tasks.audit import record_stage
from tasks.integrity import check_pinned_files_task, require_governed
from tasks.validation import validate_version_task
from tasks.prediction_log import write_parquet_atomically


class Validated(BaseModel):
    model: str
    version: str
    passed: bool
    failures: list[str]
    metrics: dict[str, float]
    reused: bool = False


@flow(name="validate", log_prints=True)
def validate(model: ModelName, version: Version, force: bool = False) -> Validated:
    """Security scan, schema check, holdout metric thresholds, data quality and fairness. A version validated
    before keeps its verdict unless `force` asks for a fresh one."""
    spec = load_spec(model)
    platform = get_platform()
    catalog, store = platform.catalog, platform.store
    governed = require_governed(platform, spec.name, version)
    if governed.retired:
        raise RetiredVersionError(f"{model} v{version} is retired", "validate a live version")
    if governed.validation_status in ("passed", "failed") and governed.validation_run_id and not force:
        check_pinned_files_task(platform, spec, governed, "validation")  # a verdict holds only for the same files
        previous = catalog.load_artifact_dict(governed.validation_run_id, "validation/report.json") or {}
        print(f"{model} v{version}: already validated ({governed.validation_status}); pass force=True to re-run")
        return Validated(model=model, version=version, passed=governed.validation_status == "passed",
                         failures=previous.get("failures", []), metrics=governed.holdout_metrics, reused=True)

    report, suite, sample = validate_version_task(platform, spec, governed)
    run_id = _log_validation_run(spec.name, version, report.as_dict(), suite, sample)
    status = "passed" if report.passed else "failed"
    security = "passed" if report.security.get("passed") else "failed"
    # The verdict and its audit record land together in the store; the MLflow tags after them only mirror it.
    record_stage(stage="validate", action="run-gates", model=spec.name, version=version, outcome=status,
                 evidence={"failures": report.failures, "metrics": report.metrics, "validation_run_id": run_id,
                           "security": report.security.get("passed"), "content_hash": governed.content_hash,
                           "data_quality_share": report.data_quality.get("success_share"),
                           "fairness": report.fairness},
                 event=events.VALIDATED if report.passed else events.VALIDATION_FAILED,
                 labels={events.CHAIN_LABEL: governed.chain},
                 change=store.set_validation(spec.name, version, security=security, status=status,
                                             metrics=report.metrics, run_id=run_id))
    info = catalog.version(spec.name, version)
    catalog.set_tags(spec.name, version, {"validation_run_id": run_id, TAG_SECURITY: security,
                                          **{f"holdout_{k}": f"{v:.6f}" for k, v in report.metrics.items()},
                                          **info.state_update("validated" if report.passed else "validation_failed"),
                                          TAG_VALIDATION: status})
    if not report.passed and store.approval_status(spec.name, version) == APPROVED:
        _revoke_approval(spec.name, version, report.failures, governed.chain)
    print(f"{model} v{version}: validation {status}" + (f" ({'; '.join(report.failures)})" if report.failures else ""))
    return Validated(model=model, version=version, passed=report.passed, failures=report.failures,
                     metrics=report.metrics)


def _revoke_approval(model: str, version: str, failures: list[str], chain: str) -> None:
    """A version that fails a fresh validation loses its approval: it can no longer be deployed or score."""
    platform = get_platform()
    reasons = [f"re-validation failed: {failure}" for failure in failures]
    record_stage(stage="approve", action="revoke-approval", model=model, version=version, outcome="rejected",
                 evidence={"reasons": reasons}, actor="policy:validation", event=events.REJECTED,
                 labels={events.CHAIN_LABEL: chain},
                 change=platform.store.set_approval(model, version, "rejected", reasons, "policy:validation"))
    platform.catalog.set_tags(model, version, {TAG_APPROVAL: "rejected"})


def _log_validation_run(model: str, version: str, report: dict, suite: list, sample) -> str:  # type: ignore[no-untyped-def]
    """One MLflow run per validation: report, expectation suite and the reference sample monitoring reuses."""
    import mlflow

    platform = get_platform()
    catalog = platform.catalog
    catalog.activate()
    with mlflow.start_run(experiment_id=catalog.experiment_id(model), run_name=f"validate-v{version}",
                          tags={"modelops.model": model, "modelops.stage": "validate",
                                "modelops.version": version, **owner_tags()}) as run:
        mlflow.log_metrics({f"holdout_{k}": v for k, v in report["metrics"].items()})
        mlflow.log_dict(report, "validation/report.json")
        mlflow.log_dict({"expectations": suite}, "data_quality/expectations.json")
        path = platform.settings.home / "tmp" / f"reference-{model}-v{version}.parquet"
        write_parquet_atomically(sample, path)
        mlflow.log_artifact(str(path), "reference")
        path.unlink()
    return run.info.run_id
