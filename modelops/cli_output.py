"""What the CLI prints for a stage's result: a readable summary (outcome, reasons, values against their limits), or
the whole result as JSON. Works on the result's plain data, so a field a flow adds later shows up when present."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from modelops.cli_render import Block, Table, plain_text
from modelops.fairness_evidence import measured_gaps

INDENT = "  "


def as_data(result: Any) -> Any:
    """The result as JSON-ready data (a flow returns a pydantic model; anything else passes through)."""
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, sort_keys=False)


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}".rstrip("0").rstrip(".")
    return "-" if value is None else str(value)


def flat(value: Any) -> str:
    """One value on one line, in full: mappings as key=value, lists comma-separated."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={flat(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flat(v) for v in value) + "]"
    return number(value)


def _bullets(title: str, items: list[Any]) -> list[str]:
    return [f"{INDENT}{title}:"] + [f"{INDENT * 2}- {flat(item)}" for item in items] if items else []


def _metrics(metrics: Mapping[str, Any] | None) -> list[str]:
    return [f"{INDENT}metrics: " + ", ".join(f"{k}={number(v)}" for k, v in metrics.items())] if metrics else []


VALUE_HEADERS = ["check", "metric", "value", "limit", "verdict"]


def value_lines(values: list[Mapping[str, Any]]) -> list[Block]:
    """Monitored values against their limits: check, metric, value, limit, verdict (a table row each)."""
    if not values:
        return []
    rows = [[str(v.get("check", "-")), str(v.get("metric", "-")), number(v.get("value")),
             number(v.get("limit", v.get("threshold"))), str(v.get("verdict", "-"))] for v in values]
    return [f"{INDENT}values:", Table(VALUE_HEADERS, rows, rule=False, indent=INDENT * 2)]


def fairness_lines(fairness: Mapping[str, Any] | None) -> list[str]:
    """Per protected attribute and metric: the gap between groups against its limit."""
    if not fairness:
        return []
    lines = [f"{INDENT}fairness:"]
    for attribute, metrics in fairness.items():
        for metric, measured in measured_gaps(metrics):
            value, limit = measured.get("value"), measured.get("limit")
            verdict = "NOT COMPUTED" if value is None else "FAILED" if limit is not None and value > limit else "ok"
            note = f" ({measured['note']})" if measured.get("note") else ""
            lines.append(f"{INDENT * 2}{attribute}: {metric}={number(value)} (limit {number(limit)}) {verdict}{note}")
    return lines


def _register(r: Mapping[str, Any]) -> list[Block]:
    window = f", trained on {r['train_start']}..{r['train_end']}" if r.get("train_start") else ""
    how = "registered" if r.get("created") else "already registered (same files), nothing new"
    return [f"{r['model']} v{r['version']}: {how}{window}", f"{INDENT}source: {r.get('source', '-')}"]


def _validate(r: Mapping[str, Any]) -> list[Block]:
    lines = [f"{r['model']} v{r['version']}: validation {'passed' if r.get('passed') else 'FAILED'}"]
    if r.get("reused"):
        lines.append(f"{INDENT}this is the verdict of an earlier validation (same files), reused: after changing the "
                     f"spec (a threshold, a gate) run `modelops validate {r['model']} --version {r['version']} "
                     "--force` for a fresh one")
    return (lines + _bullets("failures", r.get("failures") or []) + _metrics(r.get("metrics"))
            + fairness_lines(r.get("fairness")))


def _approve(r: Mapping[str, Any]) -> list[Block]:
    return [f"{r['model']} v{r['version']}: {r['status']}"] + _bullets("reasons", r.get("reasons") or [])


def _deploy(r: Mapping[str, Any]) -> list[Block]:
    change = (f"now serves as {r['role']}" + (f" (replacing v{r['previous']})" if r.get("previous") else "")
              if r.get("changed") else f"already serves as {r['role']}, nothing changed")
    targets = f" ({', '.join(r['targets'])})" if r.get("targets") else ""
    promoted = [f"{INDENT}won the comparison with the champion at once: now serves as champion"] \
        if r.get("promoted") else []
    return [f"{r['model']} v{r['version']}: {change}{targets}", *promoted]


def _score(r: Mapping[str, Any]) -> list[Block]:
    lines = [f"{r['model']} v{r['version']}: scored {r['rows']} rows -> {r['output_path']}",
             f"{INDENT}batch: {r.get('batch_id', '-')}"]
    if r.get("positive_rate") is not None:
        lines.append(f"{INDENT}positive rate: {number(r['positive_rate'])}")
    if r.get("challenger"):
        lines.append(f"{INDENT}challenger v{r['challenger']} scored {r.get('challenger_rows', 0)} rows")
    return lines


def _monitor(r: Mapping[str, Any]) -> list[Block]:
    if r.get("version") is None or r.get("verdict") == "skipped" and not r.get("rows"):
        return [f"{r['model']}: nothing to monitor (no champion or no logged predictions)"]
    lines: list[Block] = [f"{r['model']} v{r['version']}: {r['verdict']} over {r.get('rows', 0)} predictions"]
    checks = r.get("checks") or {}
    if checks:
        lines.append(f"{INDENT}checks: " + ", ".join(f"{name} {verdict}" for name, verdict in checks.items()))
    if r.get("values"):
        lines += value_lines(r["values"])
    else:  # results from before the flow reported every value: the two headline numbers it had
        if r.get("drift_share") is not None:
            lines.append(f"{INDENT}drift share: {number(r['drift_share'])} ({r.get('drift_verdict')})")
        if r.get("performance_value") is not None:
            lines.append(f"{INDENT}{r.get('performance_metric')}: {number(r['performance_value'])} "
                         f"({r.get('performance_verdict')})")
    if r.get("drifted_columns"):
        lines.append(f"{INDENT}drifted columns: {', '.join(r['drifted_columns'])}")
    if r.get("report_path"):
        lines.append(f"{INDENT}report: {r['report_path']}")
    lines += _bullets("events", r.get("events") or [])
    lines += _bullets("alerts sent", r.get("alerts_sent") or []) + _bullets("alerts NOT delivered",
                                                                            r.get("alerts_failed") or [])
    lines.append(f"{INDENT}retrain_requested: {'true' if r.get('retrain_requested') else 'false'}")
    settled = r.get("challenger")
    if settled:
        lines.append(f"{INDENT}challenger v{settled['challenger']}: {settled['outcome']}"
                     + (f" (v{settled['retired']} retired)" if settled.get("retired") else ""))
    return lines


def _retrain(r: Mapping[str, Any]) -> list[Block]:
    lines = [f"{r['model']}: retrain {r['outcome']} (challenger v{r['challenger']}, champion before: "
             f"{'v' + r['champion_before'] if r.get('champion_before') else 'none'}, after: "
             f"{'v' + r['champion_after'] if r.get('champion_after') else 'none'})"]
    if r.get("metric"):
        lines.append(f"{INDENT}{r['metric']}: challenger {number(r.get('challenger_value'))} vs champion "
                     f"{number(r.get('champion_value'))}")
    lines += _bullets("failures", r.get("failures") or [])
    if r.get("retired"):
        lines.append(f"{INDENT}retired: v{r['retired']}")
    return lines


def _sweep(r: Mapping[str, Any]) -> list[Block]:
    lines = [f"sweep: {r['judged']} of {r['models']} models judged; verdicts "
             + (", ".join(f"{k}={v}" for k, v in (r.get("verdicts") or {}).items()) or "none")]
    return lines + _bullets("breached", r.get("breached") or []) + _bullets("errors", r.get("errors") or [])


def _retire(r: Mapping[str, Any]) -> list[Block]:
    if r.get("dry_run"):
        head = "dry run: would retire it (pass --no-dry-run to do it)"
    else:
        head = "retired" if r.get("changed") else "already retired, nothing changed"
    removed = f"{INDENT}MLflow aliases removed: {', '.join(r['aliases_removed'])}" if r.get("aliases_removed") else ""
    return [f"{r['model']} v{r['version']}: {head}"] + ([removed] if removed else [])


_RENDERERS: dict[str, Callable[[Mapping[str, Any]], list[Block]]] = {
    "register": _register, "validate": _validate, "approve": _approve, "deploy": _deploy, "score": _score,
    "monitor": _monitor, "retrain": _retrain, "sweep": _sweep, "retire": _retire,
}


def stage_blocks(stage: str, data: Any) -> list[Block]:
    """The human summary of one stage's result; a result this module does not know is shown as JSON."""
    render = _RENDERERS.get(stage)
    if render is None or not isinstance(data, Mapping):
        return [as_json(data)]
    try:
        return render(data)
    except KeyError:  # a result shaped otherwise than expected: all of it rather than nothing
        return [as_json(data)]


def stage_text(stage: str, data: Any) -> str:
    return plain_text(stage_blocks(stage, data))


def breach_note(stage: str, data: Any, own_server: bool) -> str | None:
    """When this process ran against a temporary Prefect server of its own, a retrain request goes to no one."""
    if not own_server or not isinstance(data, Mapping):
        return None
    if stage == "monitor" and data.get("retrain_requested"):
        models, what = [str(data["model"])], f"retraining was requested for {data['model']}"
    elif stage == "sweep" and data.get("breached"):
        models = [str(m) for m in data["breached"]]
        what = f"{', '.join(models)} breached (retraining is requested where the spec says so)"
    else:
        return None
    retrain = " / ".join(f"`modelops retrain {model}`" for model in models)
    return (f"note: {what}, but this command ran against its own temporary Prefect server: nothing is listening "
            "for the event, so no retrain will run.\n"
            f"      Act on it: run {retrain} now, or start the platform with `modelops up` (then triggers act on "
            "breaches, and the CLI uses that server)")
