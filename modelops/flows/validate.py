"""validate: put a registered version through the spec's gates and record the verdict with its evidence."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import TAG_STATE, TAG_VALIDATION
from modelops.errors import RetiredVersionError
from modelops.flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import load_spec
from modelops.tasks.audit import record_stage
from modelops.tasks.validation import validate_version_task
from modelops.tasks.prediction_log import write_parquet_atomically


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
    catalog = platform.catalog
    info = catalog.version(spec.name, version)
    if info.retired:
        raise RetiredVersionError(f"{model} v{version} is retired", "validate a live version")
    if info.tags.get(TAG_VALIDATION) in ("passed", "failed") and not force:
        previous = catalog.load_artifact_dict(info.tags["validation_run_id"], "validation/report.json") or {}
        print(f"{model} v{version}: already validated ({info.tags[TAG_VALIDATION]}); pass force=True to re-run")
        return Validated(model=model, version=version, passed=info.tags[TAG_VALIDATION] == "passed",
                         failures=previous.get("failures", []), metrics=previous.get("metrics", {}), reused=True)

    report, suite, sample = validate_version_task(platform, spec, info)
    run_id = _log_validation_run(spec.name, version, report.as_dict(), suite, sample)
    status = "passed" if report.passed else "failed"
    catalog.set_tags(spec.name, version, {
        TAG_VALIDATION: status, "validation_run_id": run_id,
        TAG_STATE: "validated" if report.passed else "validation_failed",
        **{f"holdout_{name}": f"{value:.6f}" for name, value in report.metrics.items()},
    })
    record_stage(stage="validate", action="run-gates", model=spec.name, version=version, outcome=status,
                 evidence={"failures": report.failures, "metrics": report.metrics, "validation_run_id": run_id,
                           "security": report.security.get("passed"),
                           "data_quality_share": report.data_quality.get("success_share"),
                           "fairness": report.fairness},
                 event=events.VALIDATED if report.passed else events.VALIDATION_FAILED,
                 labels=events.chain_labels(info.tags))
    print(f"{model} v{version}: validation {status}" + (f" ({'; '.join(report.failures)})" if report.failures else ""))
    return Validated(model=model, version=version, passed=report.passed, failures=report.failures,
                     metrics=report.metrics)


def _log_validation_run(model: str, version: str, report: dict, suite: list, sample) -> str:  # type: ignore[no-untyped-def]
    """One MLflow run per validation: report, expectation suite and the reference sample monitoring reuses."""
    import mlflow

    platform = get_platform()
    catalog = platform.catalog
    catalog.activate()
    with mlflow.start_run(experiment_id=catalog.experiment_id(model), run_name=f"validate-v{version}",
                          tags={"modelops.model": model, "modelops.stage": "validate",
                                "modelops.version": version}) as run:
        mlflow.log_metrics({f"holdout_{k}": v for k, v in report["metrics"].items()})
        mlflow.log_dict(report, "validation/report.json")
        mlflow.log_dict({"expectations": suite}, "data_quality/expectations.json")
        path = platform.settings.home / "tmp" / f"reference-{model}-v{version}.parquet"
        write_parquet_atomically(sample, path)
        mlflow.log_artifact(str(path), "reference")
        path.unlink()
    return run.info.run_id
