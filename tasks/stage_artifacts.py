"""Each life-cycle stage's evidence as Prefect artifacts, so an operator sees in the Prefect UI what a run did
without the CLI: validation's gate table and verdict, approval's decision, deployment's serving change,
retirement and the retrain's champion-versus-challenger comparison.

Keys are built here only (`artifact_key`); the content is plain functions of the stage's records; publishing is a
task (it changes the API's state), run only inside a flow run. Publishing comes after the stage recorded its state
change: a refusal by the Prefect API fails the publishing task run (visible in the run's task list), is logged as a
warning naming the artifact, and never fails the stage whose records already stand.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from modelops.compliance import markdown_table, md_text
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.platform import Platform
from modelops.spec import Bound, LifecycleSpec
from tasks import as_task
from tasks.validation import GATE_TASK_NAMES

PASS, FAIL, NOT_RUN, NOT_GATED = "pass", "fail", "not run", "not gated"
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def artifact_key(kind: str, model: str) -> str:
    """`<kind>-<model>` in what Prefect allows in a key (lowercase letters, digits, dashes). A model name that had
    to be changed for that gets a short hash of the original, so two names never share a key."""
    safe = _UNSAFE.sub("-", model.lower()).strip("-")
    safe = re.sub("-{2,}", "-", safe)
    if safe != model:
        safe = f"{safe}-{hashlib.sha256(model.encode()).hexdigest()[:8]}".lstrip("-")
    return f"{kind}-{safe}"


@dataclass(frozen=True)
class StageArtifact:
    """One artifact to publish: a Markdown text or a table (rows of equal keys)."""

    key: str
    description: str
    markdown: str | None = None
    table: list[dict[str, Any]] = field(default_factory=list)


def _json_value(value: Any) -> Any:
    # A table artifact is JSON: NaN and infinity are not.
    return None if isinstance(value, float) and not math.isfinite(value) else value


def publish_artifacts(artifacts: Sequence[StageArtifact]) -> list[str]:
    """Create the artifacts (each the newest under its key); returns their keys."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    for artifact in artifacts:
        if artifact.markdown is not None:
            create_markdown_artifact(key=artifact.key, markdown=artifact.markdown, description=artifact.description)
        else:
            create_table_artifact(key=artifact.key, description=artifact.description,
                                  table=[{k: _json_value(v) for k, v in row.items()} for row in artifact.table])
    return [a.key for a in artifacts]


publish_artifacts_task = as_task(publish_artifacts, retries=1)


def publish(stage: str, artifacts: Sequence[StageArtifact]) -> bool:
    """Publish a stage's artifacts as its task `publish-<stage>-artifacts`; True when they were published. Outside
    a flow run (a stage function called as a plain function) there is no run to show them in: nothing is
    published. A failure is the publishing task run's (Failed in the UI) and a warning in the stage's log."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return False
    state = publish_artifacts_task.with_options(name=f"publish-{stage}-artifacts")(list(artifacts),
                                                                                   return_state=True)
    if state.is_completed():
        return True
    get_run_logger().warning("artifacts %s not published (%s): the stage's records stand, the Prefect UI lacks "
                             "this run's evidence", ", ".join(a.key for a in artifacts), state.message)
    return False


# --- validation ----------------------------------------------------------------------------------------------
def _gate(name: str) -> str:
    return GATE_TASK_NAMES[name].removeprefix("gate-")


def _row(gate: str, check: str, value: Any, limit: Any, verdict: str, detail: str = "") -> dict[str, Any]:
    return {"gate": gate, "check": check, "value": value, "limit": limit, "verdict": verdict, "detail": detail}


def _failure(failures: list[str], prefix: str) -> str | None:
    return next((f for f in failures if f.startswith(prefix)), None)


# An empty check cell: a lone "-" would render as a Markdown list bullet.
NO_CHECK = "—"


def bound_text(bound: Bound) -> str | None:
    if bound.min is not None and bound.max is not None:
        return f"{bound.min} .. {bound.max}"
    # ≥ and ≤, not >= and <=: the UI renders each table cell as Markdown, where a leading ">" makes a quotation.
    return f"≥ {bound.min}" if bound.min is not None else f"≤ {bound.max}" if bound.max is not None else None


def _security_rows(report: dict[str, Any], failures: list[str]) -> list[dict[str, Any]]:
    scan = report.get("security") or {}
    findings = list(scan.get("findings") or [])
    passed = bool(scan.get("passed"))
    detail = "; ".join(findings) if findings else f"{scan.get('kind', '?')} model, {scan.get('serialization', '?')}"
    return [_row(_gate("security-scan"), "pinned files and scan findings", len(findings), 0,
                 PASS if passed and not _failure(failures, "security:") else FAIL, detail)]


def _metric_rows(spec: LifecycleSpec, metrics: dict[str, float], failures: list[str]) -> list[dict[str, Any]]:
    rows = []
    thresholds = spec.validation.metric_thresholds
    for name in sorted(set(metrics) | set(thresholds)):
        failed = _failure(failures, f"metric: {name} ")
        bound = thresholds.get(name)
        verdict = FAIL if failed else PASS if bound is not None else NOT_GATED
        rows.append(_row(_gate("holdout-metrics"), name, metrics.get(name), bound_text(bound) if bound else None,
                         verdict, failed.removeprefix("metric: ") if failed else f"holdout {name}"))
    return rows


def _quality_rows(spec: LifecycleSpec, quality: dict[str, Any], failures: list[str],
                  suite: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    gate = _gate("data-quality")
    failed = _failure(failures, "data quality:")
    rows = [_row(gate, "share of expectations met", quality.get("success_share"),
                 f"≥ {spec.validation.data_quality.min_success_share}", FAIL if failed else PASS,
                 failed.removeprefix("data quality: ") if failed
                 else f"{quality.get('evaluated', 0)} expectations on the holdout")]
    mostly = {(e["type"], e["kwargs"].get("column")): e["kwargs"].get("mostly") for e in suite or []}
    for item in quality.get("failures") or []:
        column, percent = item.get("column"), item.get("unexpected_percent")
        allowed = mostly.get((item["expectation"], column))
        examples = ", ".join(item.get("partial_unexpected") or [])
        rows.append(_row(gate, item["expectation"], None if percent is None else percent / 100,
                         None if allowed is None else round(1 - allowed, 4), FAIL,
                         f"column {column}: share of rows unexpected" + (f", e.g. {examples}" if examples else "")
                         if column else "table-level expectation"))
    return rows


def _fairness_rows(fairness: dict[str, Any], failures: list[str]) -> list[dict[str, Any]]:
    from modelops.fairness_evidence import measured_gaps

    rows = []
    for attribute, metrics in sorted(fairness.items()):
        for metric, found in measured_gaps(metrics):
            failed = _failure(failures, f"fairness: {metric} on {attribute} ")
            detail = f"attribute {attribute}, {found.get('groups', 0)} groups compared"
            if found.get("note"):
                detail += f" ({found['note']})"
            rows.append(_row(_gate("fairness"), metric, found.get("value"), found.get("limit"),
                             FAIL if failed else PASS, detail))
    return rows


def validation_rows(spec: LifecycleSpec, report: dict[str, Any],
                    suite: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per gate and check (a ValidationReport as a dict, as the validation run stores it): value, limit,
    verdict and a detail naming the column, segment or metric. Gates after a failed scan or schema: not run."""
    failures = list(report.get("failures") or [])
    rows = _security_rows(report, failures)
    window = report.get("holdout_window") or []
    if not window:
        return rows + [_row(_gate(g), NO_CHECK, None, None, NOT_RUN, "the security scan failed")
                       for g in ("schema", "holdout-metrics", "data-quality", "fairness")]
    schema_failed = _failure(failures, "schema:")
    rows.append(_row(_gate("schema"), "holdout conforms to the model's signature", report.get("holdout_rows"), None,
                     FAIL if schema_failed else PASS,
                     schema_failed.removeprefix("schema: ") if schema_failed else f"holdout {window[0]}..{window[1]}"))
    if schema_failed:
        return rows + [_row(_gate(g), NO_CHECK, None, None, NOT_RUN, "the schema gate failed")
                       for g in ("holdout-metrics", "data-quality", "fairness")]
    rows += _metric_rows(spec, report.get("metrics") or {}, failures)
    rows += _quality_rows(spec, report.get("data_quality") or {}, failures, suite)
    fairness = report.get("fairness") or {}
    rows += _fairness_rows(fairness, failures) if fairness else [
        _row(_gate("fairness"), NO_CHECK, None, None, NOT_GATED, "the spec lists no protected attributes")]
    onnx = report.get("onnx") or {}
    if onnx:
        rows.append(_row("onnx-conversion", "max |score difference| (not a gate)", onnx.get("max_abs_difference"),
                         onnx.get("tolerance"), "converted" if onnx.get("converted") else "native",
                         onnx.get("reason") or f"{onnx.get('rows_compared', 0)} holdout rows compared"))
    return rows


def validation_markdown(model: str, version: str, report: dict[str, Any], rows: list[dict[str, Any]],
                        run_id: str | None, reused: bool) -> str:
    passed = bool(report.get("passed"))
    lines = [f"# {model} v{version}: validation {'PASSED' if passed else 'FAILED'}", ""]
    if reused:
        lines += ["The verdict of an earlier validation is reused (same pinned files, same verdict); "
                  "`modelops validate --force` gives a fresh one.", ""]
    window = report.get("holdout_window") or []
    if window:
        lines += [f"Holdout {window[0]}..{window[1]}, {report.get('holdout_rows', 0)} rows.", ""]
    if not passed:
        lines += ["## Why it was rejected", ""] + [f"- {md_text(f)}" for f in report.get("failures") or []] + [""]
    verdicts: dict[str, list[str]] = {}
    for row in rows:
        verdicts.setdefault(row["gate"], []).append(row["verdict"])
    lines += [markdown_table(["gate", "verdict", "checks"], [
        [gate, FAIL if FAIL in found else found[0] if len(set(found)) == 1 else PASS, len(found)]
        for gate, found in verdicts.items()]), ""]
    if run_id:
        lines.append(f"MLflow validation run: `{run_id}` (report, expectations, reference sample).")
    return "\n".join(lines)


def validation_artifacts(spec: LifecycleSpec, version: str, report: dict[str, Any],
                         suite: list[dict[str, Any]] | None, run_id: str | None,
                         reused: bool = False) -> list[StageArtifact]:
    rows = validation_rows(spec, report, suite)
    verdict = "passed" if report.get("passed") else "failed"
    return [StageArtifact(artifact_key("validation", spec.name), table=rows,
                          description=f"{spec.name} v{version}: validation {verdict}, every gate's checks"
                                      + (" (reused verdict)" if reused else "")),
            StageArtifact(artifact_key("validation", spec.name) + "-summary",
                          markdown=validation_markdown(spec.name, version, report, rows, run_id, reused),
                          description=f"{spec.name} v{version}: validation {verdict}")]


# --- approval, deployment, retirement --------------------------------------------------------------------------
def decided_by(platform: Platform, model: str, version: str) -> str | None:
    """Who recorded the version's current approval decision: the policy, a person, the deadline (the newest
    approve-stage audit record whose outcome is a decision)."""
    decisions = {str(s) for s in ApprovalStatus}
    return next((r.actor for r in reversed(platform.store.audit_trail(model)) if r.version == version
                 and r.stage == Stage.approve and str(r.outcome) in decisions), None)


def approval_artifact(model: str, version: str, status: str, reasons: list[str], by: str | None) -> StageArtifact:
    lines = [f"# {model} v{version}: {str(status).upper()}", "",
             f"Decision recorded by: {md_text(by or 'nobody')}", "", "## Reasons", ""] + [f"- {md_text(r)}" for r in reasons or ["none recorded"]]
    return StageArtifact(artifact_key("approval", model), markdown="\n".join(lines),
                         description=f"{model} v{version}: {status}")


def deployment_artifact(model: str, version: str, role: str, changed: bool, replaced: str | None,
                        targets: list[str], strategy: str, promoted: bool = False) -> StageArtifact:
    if changed:
        title = f"# {model} v{version} serves as @{role}"
        change = f"replacing v{replaced}" if replaced else f"no version served as @{role} before"
    else:
        title = f"# {model} v{version} already serves as @{role}"
        change = "nothing changed"
    lines = [title, "", markdown_table(["version", "role", "targets", "strategy", "replaced"],
                                       [[f"v{version}", role, ", ".join(targets), strategy,
                                         f"v{replaced}" if changed and replaced else None]]), "", change + "."]
    if promoted:
        lines += ["", "It entered as challenger, won the comparison with the champion at once and was promoted."]
    return StageArtifact(artifact_key("deployment", model), markdown="\n".join(lines),
                         description=f"{model} v{version} @{role}: {change}")


def retirement_artifact(model: str, version: str, reason: str, dry_run: bool, aliases: list[str],
                        changed: bool) -> StageArtifact:
    if dry_run:
        what = f"dry run: would retire {model} v{version}"
    else:
        what = f"{model} v{version} retired" if changed else f"{model} v{version} was retired already"
    lines = [f"# {what}", "", markdown_table(["version", "reason", "dry run", "MLflow aliases removed", "changed"],
                                             [[f"v{version}", reason, "yes" if dry_run else "no",
                                               ", ".join(aliases) or None, "yes" if changed else "no"]])]
    return StageArtifact(artifact_key("retirement", model), markdown="\n".join(lines), description=what)


# --- retrain ---------------------------------------------------------------------------------------------------
def comparison_artifact(kind: str, spec: LifecycleSpec, champion: str | None, challenger: str, outcome: str,
                        comparison: Any | None, window: tuple[Any, Any] | None = None,
                        holdout: dict[str, dict[str, float]] | None = None, failures: Sequence[str] = (),
                        note: str = "") -> StageArtifact:
    """Champion and challenger on the same recent labelled traffic (a tasks.comparison.Comparison), the gate
    (retrain.min_improvement) and the decision; each version's own validation holdout metrics beside them."""
    gate = spec.retrain.min_improvement
    lines = [f"# {spec.name}: challenger v{challenger} vs champion " + (f"v{champion}" if champion else "(none)")
             + f": {outcome}", ""]
    if comparison is not None:
        where = f"{comparison.rows} recent labelled predictions" + (
            f" ({window[0]:%Y-%m-%d %H:%M} .. {window[1]:%Y-%m-%d %H:%M} UTC)" if window else "")
        lines += [f"Compared on the same {where}: {comparison.metric}, improvement "
                  f"{comparison.improvement:+.4f} against the gate > {gate} "
                  f"({'the challenger wins' if comparison.challenger_wins else 'the champion stays'}).", "",
                  markdown_table(["version", "role", comparison.metric],
                                 [[f"v{champion}", "champion", comparison.champion],
                                  [f"v{challenger}", "challenger", comparison.challenger]]), ""]
    elif champion is None:
        lines += ["No champion served: nothing to compare with.", ""]
    else:
        lines += [f"No comparison on recent traffic: {note or 'none was made'}.", ""]
    if failures:
        lines += ["## Validation failures of the challenger", ""] + [f"- {md_text(f)}" for f in failures] + [""]
    if holdout:
        metrics = sorted({m for values in holdout.values() for m in values})
        lines += ["## Validation holdout metrics (each version's own holdout window: for reference only)", "",
                  markdown_table(["version", *metrics], [[f"v{v}", *[values.get(m) for m in metrics]]
                                                         for v, values in holdout.items()])]
    return StageArtifact(artifact_key(kind, spec.name), markdown="\n".join(lines),
                         description=f"{spec.name}: challenger v{challenger} vs "
                                     f"{f'champion v{champion}' if champion else 'no champion'}: {outcome}")


def holdout_metrics_of(platform: Platform, model: str, versions: Sequence[str | None]) -> dict[str, dict[str, float]]:
    found = {}
    for version in versions:
        governed = platform.store.governed_version(model, version) if version else None
        if governed is not None and governed.holdout_metrics:
            found[version] = dict(governed.holdout_metrics)
    return found
