"""What `modelops status`, `modelops audit` and the demo print: plain-text tables over the systems of record."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from modelops.cli_output import flat, number
from modelops.cli_render import Block, Table, plain_table, plain_text
from modelops.platform import Platform
from modelops.store.records import GovernedVersion
from tasks.integrity import ROLES, alias_findings, tag_differences


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return plain_table(Table(headers, rows))


def _duration(start: datetime | None, end: datetime | None) -> str:
    from modelops.kpis import duration_text, hours

    return "-" if start is None or end is None else duration_text(hours(start, end))


def _state(governed: GovernedVersion, roles: list[str], approval: str | None) -> str:
    if governed.retired:
        return "retired"
    if roles:
        return "serving"
    if approval in ("approved", "rejected", "pending"):
        return approval
    return {"passed": "validated", "failed": "validation_failed"}.get(governed.validation_status or "", "registered")


def version_records(platform: Platform, model: str, metric: str | None) -> list[dict[str, Any]]:
    """One record per governed version, from the governance store: serving role, state, verdicts, holdout metric,
    lead time registered -> serving; MLflow's aliases are shown beside it (they only mirror the store)."""
    store = platform.store
    aliases: dict[str, list[str]] = {}
    for alias, version in platform.catalog.aliases_or_empty(model).items():
        aliases.setdefault(version, []).append(f"@{alias}")
    serving = {role: store.serving_version(model, role) for role in ROLES}
    records = []
    for governed in store.governed_versions(model):
        roles = [role for role, version in serving.items() if version == governed.version]
        served = store.first_served_at(model, governed.version)
        window = (f"{governed.train_start:%Y-%m-%d}..{governed.train_end:%Y-%m-%d}"
                  if governed.train_start and governed.train_end else governed.source)
        approval = store.approval_status(model, governed.version)
        records.append({"version": governed.version, "serves_as": roles,
                        "mlflow_aliases": sorted(aliases.get(governed.version, [])),
                        "state": _state(governed, roles, approval), "trained_on": window,
                        "validation": governed.validation_status, "approval": approval,
                        "holdout_metric": metric, "holdout_value": governed.holdout_metrics.get(metric) if metric
                        else None, "lead_time": _duration(governed.registered_at, served)})
    return records


def version_rows(platform: Platform, model: str, metric: str | None) -> list[list[Any]]:
    return [[f"v{r['version']}", ",".join(r["serves_as"]) or "-", ",".join(r["mlflow_aliases"]) or "-", r["state"],
             r["trained_on"], r["validation"] or "-", r["approval"] or "-",
             f"{r['holdout_value']:.4f}" if r["holdout_value"] is not None else "-", r["lead_time"]]
            for r in version_records(platform, model, metric)]


VERSION_HEADERS = ["version", "serves as", "MLflow aliases", "state", "trained on", "validation", "approval",
                   "holdout {metric}", "lead time (registered->serving)"]


def findings_text(platform: Platform, model: str) -> list[str]:
    """Where MLflow disagrees with the store: aliases, and versions no gate ever judged."""
    findings = [f"FINDING: {finding.text(model)} (`modelops reconcile {model}` resets it)"
                for finding in alias_findings(platform, model)]
    governed = {g.version for g in platform.store.governed_versions(model)}
    findings += [f"FINDING: MLflow holds v{info.version} of {model}, which has no governance record: it never serves"
                 for info in platform.catalog.versions(model) if info.version not in governed]
    findings += [f"FINDING: MLflow tag {tag} of {model} v{version} says {was!r}, the store says {wanted!r}"
                 for version, tags in tag_differences(platform, model).items()
                 for tag, (was, wanted) in tags.items()]
    return findings


def last_monitoring(platform: Platform, model: str) -> dict[str, Any]:
    """The newest monitoring run of the model (every value against its limit) and the newest sweep verdict."""
    history = platform.store.monitoring_history(model)
    monitors = [item for item in history if item[0].kind == "monitor"]
    sweeps = [run for run, _ in history if run.kind == "sweep"]
    out: dict[str, Any] = {"monitoring": None, "sweep": None}
    if sweeps:
        out["sweep"] = {"version": sweeps[-1].version, "verdict": sweeps[-1].verdict}
    if monitors:
        run, results = monitors[-1]
        out["monitoring"] = {
            "version": run.version, "window": [run.window_start.isoformat(), run.window_end.isoformat()],
            "verdict": run.verdict,
            "values": [{"check": r.check, "metric": r.metric, "value": r.value, "limit": r.threshold,
                        "verdict": r.verdict} for r in results]}
    return out


def status_data(platform: Platform, models: Sequence[str], metrics: dict[str, str]) -> list[dict[str, Any]]:
    """What `modelops status --json` prints: per model its versions, findings and newest verdicts."""
    return [{"model": model, "versions": version_records(platform, model, metrics.get(model)),
             "findings": findings_text(platform, model), **last_monitoring(platform, model)} for model in models]


def status_blocks(platform: Platform, models: Sequence[str], metrics: dict[str, str]) -> list[Block]:
    """Per model: its versions' table, findings, the newest sweep and monitoring verdicts."""
    if not models:
        return ["No models registered yet. Run `modelops demo` or `modelops register <model>`."]
    parts: list[Block] = []
    for model in models:
        metric = metrics.get(model)
        headers = [h.format(metric=metric or "metric") for h in VERSION_HEADERS]
        parts.append(Table(headers, version_rows(platform, model, metric), heading=model))
        parts += findings_text(platform, model)
        last = last_monitoring(platform, model)
        if last["sweep"]:
            parts.append(f"last sweep: v{last['sweep']['version']} drift verdict={last['sweep']['verdict']}")
        if last["monitoring"]:
            run = last["monitoring"]
            headline = [v for v in run["values"] if v["check"] != "drift-column" and v["value"] is not None]
            parts.append(f"last monitoring: v{run['version']} window {run['window'][0][:10]}..{run['window'][1][:10]} "
                         f"verdict={run['verdict']}"
                         # A verdict only beside a value judged against a limit; the others are context.
                         + "".join(f" {v['metric']}={number(v['value'])}"
                                   + (f" ({v['verdict']})" if v.get("limit") is not None else "") for v in headline))
    return parts


STATUS_SEPARATOR = "\n\n"


def status_text(platform: Platform, models: Sequence[str], metrics: dict[str, str]) -> str:
    return plain_text(status_blocks(platform, models, metrics), STATUS_SEPARATOR)


def audit_data(platform: Platform, model: str) -> list[dict[str, Any]]:
    """The model's whole audit trail, oldest first, every field and all the evidence."""
    return [{"at": entry.at.isoformat(), "actor": entry.actor, "stage": entry.stage, "action": entry.action,
             "version": entry.version, "outcome": entry.outcome, "evidence": entry.evidence, "seq": entry.seq,
             "record_hash": entry.record_hash} for entry in platform.store.audit_trail(model)]


def audit_blocks(platform: Platform, model: str) -> list[Block]:
    """One table row per entry, oldest first; under each row its evidence in full, one item per line."""
    trail = platform.store.audit_trail(model)
    if not trail:
        return [f"No audit entries for {model}."]
    rows = [[entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.stage, entry.action,
             f"v{entry.version}" if entry.version else "-", entry.outcome] for entry in trail]
    evidence = [[f"{key}: {flat(value)}" for key, value in entry.evidence.items() if value not in (None, [], {}, "")]
                for entry in trail]
    return [Table(["when (UTC)", "who", "stage", "what", "version", "outcome"], rows, details=evidence,
                  details_column=3)]


def audit_text(platform: Platform, model: str) -> str:
    return plain_text(audit_blocks(platform, model))
