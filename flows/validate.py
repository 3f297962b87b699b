"""validate: put a registered version through the spec's gates and record the verdict with its evidence."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel

from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lineage_events import STAGE_HOOKS
from modelops.errors import RetiredVersionError
from modelops.lifecycle import ApprovalStatus, GateStatus, Stage
from modelops.platform import get_platform
from tasks.context import ModelVersion, resolve_model_version
from tasks.decisions import record_validation_task, revoke_approval_task
from tasks.integrity import check_pinned_files_task
from tasks.stage_artifacts import publish, validation_artifacts
from tasks.validation import log_validation_run_task, validate_version


class Validated(BaseModel):
    model: str
    version: str
    passed: bool
    failures: list[str]
    metrics: dict[str, float]
    fairness: dict[str, Any] | None = None  # per protected attribute: metric, value, limit
    reused: bool = False


@flow(name="validate", log_prints=True, **STAGE_HOOKS)
def validate(model: ModelName, version: Version, force: bool = False) -> Validated:
    """Security scan, schema check, holdout metric thresholds, data quality and fairness. A version validated
    before keeps its verdict unless `force` asks for a fresh one."""
    handed, result = hand_over(Stage.validate, dict(model=model, version=version, force=force))
    return result if handed else standard_validate(resolve_model_version(model, version), force)


def previous_verdict(mv: ModelVersion) -> Validated | None:
    """The verdict a version already has (its files checked against the pin: a verdict holds only for them),
    published again as this run's artifacts: the run shows the verdict that holds and why."""
    platform = get_platform()
    if mv.governed.validation_status not in set(GateStatus) or not mv.governed.validation_run_id:
        return None
    check_pinned_files_task(platform, mv.spec, mv.governed, "validation")
    run_id = mv.governed.validation_run_id
    previous = platform.catalog.load_artifact_dict(run_id, "validation/report.json") or {}
    passed = mv.governed.validation_status == GateStatus.passed
    suite = (platform.catalog.load_artifact_dict(run_id, "data_quality/expectations.json") or {}).get("expectations")
    publish("validation", validation_artifacts(mv.spec, mv.version, {**previous, "passed": passed}, suite, run_id,
                                               reused=True))
    return Validated(model=mv.model, version=mv.version, passed=passed,
                     failures=previous.get("failures", []), metrics=mv.governed.holdout_metrics,
                     fairness=previous.get("fairness") or None, reused=True)


def standard_validate(mv: ModelVersion, force: bool) -> Validated:
    platform = get_platform()
    if mv.governed.retired:
        raise RetiredVersionError(f"{mv.model} v{mv.version} is retired", "validate a live version")
    previous = None if force else previous_verdict(mv)
    if previous is not None:
        print(f"{mv.model} v{mv.version}: already validated ({mv.governed.validation_status}); pass force=True "
              "to re-run")
        return previous
    report, suite, sample, onnx_model = validate_version(platform, mv)
    run_id = log_validation_run_task(platform, mv, report, suite, sample, onnx_model)
    status = record_validation_task(platform, mv, report, run_id)
    if not report.passed and platform.store.approval_status(mv.model, mv.version) == ApprovalStatus.approved:
        revoke_approval_task(platform, mv, report.failures)
    publish("validation", validation_artifacts(mv.spec, mv.version, report.as_dict(), suite, run_id))
    print(f"{mv.model} v{mv.version}: validation {status}" + (f" ({'; '.join(report.failures)})"
                                                              if report.failures else ""))
    if report.onnx:
        print(f"{mv.model} v{mv.version}: " + (f"scores through ONNX (max |difference| "
                                               f"{report.onnx['max_abs_difference']:.2g} on "
                                               f"{report.onnx['rows_compared']} holdout rows)"
                                               if report.onnx["converted"] else
                                               f"scores natively ({report.onnx['reason']})"))
    return Validated(model=mv.model, version=mv.version, passed=report.passed, failures=report.failures,
                     metrics=report.metrics, fairness=report.fairness or None)
