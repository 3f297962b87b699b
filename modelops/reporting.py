"""What `modelops status`, `modelops audit` and the demo print: plain-text tables over the systems of record."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from modelops.cli_output import flat, number
from modelops.cli_render import Block, Table, plain_table, plain_text
from modelops.platform import Platform
from modelops.status_facts import StatusFacts, read_status_facts
from modelops.store.records import GovernedVersion


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


def version_records(platform: Platform, model: str, metric: str | None,
                    facts: StatusFacts | None = None) -> list[dict[str, Any]]:
    """One record per governed version, from the governance store: serving role, state, verdicts, holdout metric,
    lead time registered -> serving; MLflow's aliases are shown beside it (they only mirror the store). `facts`
    read for many models at once (status), else read for this one."""
    facts = facts or read_status_facts(platform, [model])
    aliases: dict[str, list[str]] = {}
    for alias, version in facts.aliases.get(model, {}).items():
        aliases.setdefault(version, []).append(f"@{alias}")
    serving = facts.serving_of(model)
    records = []
    for governed in facts.governed.get(model, []):
        roles = [role for role, version in serving.items() if version == governed.version]
        served = facts.first_served.get((model, governed.version))
        window = (f"{governed.train_start:%Y-%m-%d}..{governed.train_end:%Y-%m-%d}"
                  if governed.train_start and governed.train_end else governed.source)
        approval = facts.approvals.get((model, governed.version))
        records.append({"version": governed.version, "serves_as": roles,
                        "mlflow_aliases": sorted(aliases.get(governed.version, [])) if facts.mlflow else None,
                        "state": _state(governed, roles, approval), "trained_on": window,
                        "validation": governed.validation_status, "approval": approval,
                        "holdout_metric": metric, "holdout_value": governed.holdout_metrics.get(metric) if metric
                        else None, "lead_time": _duration(governed.registered_at, served)})
    return records


def version_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    return [[f"v{r['version']}", ",".join(r["serves_as"]) or "-",
             "not read" if r["mlflow_aliases"] is None else ",".join(r["mlflow_aliases"]) or "-", r["state"],
             r["trained_on"], r["validation"] or "-", r["approval"] or "-",
             f"{r['holdout_value']:.4f}" if r["holdout_value"] is not None else "-", r["lead_time"]]
            for r in records]


VERSION_HEADERS = ["version", "serves as", "MLflow aliases", "state", "trained on", "validation", "approval",
                   "holdout {metric}", "lead time (registered->serving)"]


def findings_text(platform: Platform, model: str, facts: StatusFacts | None = None) -> list[str]:
    """Where MLflow disagrees with the store: aliases, and versions no gate ever judged."""
    facts = facts or read_status_facts(platform, [model])
    if not facts.mlflow:
        return []  # every finding here is MLflow disagreeing with the store
    findings = [f"FINDING: {finding.text(model)} (`modelops reconcile {model}` resets it)"
                for finding in facts.alias_findings(model)]
    governed = {g.version for g in facts.governed.get(model, [])}
    findings += [f"FINDING: MLflow holds v{version} of {model}, which has no governance record: it never serves"
                 for version in sorted(facts.tags.get(model, {}), key=int) if version not in governed]
    findings += [f"FINDING: MLflow tag {tag} of {model} v{version} says {was!r}, the store says {wanted!r}"
                 for version, tags in facts.tag_differences(model).items()
                 for tag, (was, wanted) in tags.items()]
    return findings


def last_monitoring(facts: StatusFacts, model: str) -> dict[str, Any]:
    """The newest monitoring run of the model (every value against its limit) and the newest sweep verdict."""
    out: dict[str, Any] = {"monitoring": None, "sweep": None}
    sweep = facts.monitoring.get((model, "sweep"))
    if sweep is not None:
        out["sweep"] = {"version": sweep[0].version, "verdict": sweep[0].verdict}
    monitor = facts.monitoring.get((model, "monitor"))
    if monitor is not None:
        run, results = monitor
        out["monitoring"] = {
            "version": run.version, "window": [run.window_start.isoformat(), run.window_end.isoformat()],
            "verdict": run.verdict,
            "values": [{"check": r.check, "metric": r.metric, "value": r.value, "limit": r.threshold,
                        "verdict": r.verdict} for r in results]}
    return out


def status_data(platform: Platform, models: Sequence[str] | None, metrics: dict[str, str],
                mlflow: bool = True) -> list[dict[str, Any]]:
    """What `modelops status --json` prints: per model (these, or None: every registered model) its versions,
    findings and newest verdicts. Without `mlflow` (`--store-only`), the governance store's facts alone: MLflow
    aliases are null and MLflow's disagreements are not looked for."""
    facts = read_status_facts(platform, models, mlflow)
    return [{"model": model, "versions": version_records(platform, model, metrics.get(model), facts),
             "findings": findings_text(platform, model, facts), **last_monitoring(facts, model)}
            for model in facts.models]


STORE_ONLY_NOTE = ("MLflow not read (--store-only): its aliases and tags were not compared with the store; "
                   "`modelops status` without it lists where they disagree")


def status_blocks(platform: Platform, models: Sequence[str] | None, metrics: dict[str, str],
                  mlflow: bool = True) -> list[Block]:
    """Per model (these, or None: every registered model): its versions' table, findings, the newest sweep and
    monitoring verdicts."""
    statuses = status_data(platform, models, metrics, mlflow)
    if not statuses:
        return ["No models registered yet. Run `modelops demo` or `modelops register <model>`."]
    parts: list[Block] = []
    for status in statuses:
        metric = metrics.get(status["model"])
        headers = [h.format(metric=metric or "metric") for h in VERSION_HEADERS]
        parts.append(Table(headers, version_rows(status["versions"]), heading=status["model"]))
        parts += status["findings"]
        if status["sweep"]:
            parts.append(f"last sweep: v{status['sweep']['version']} drift verdict={status['sweep']['verdict']}")
        if status["monitoring"]:
            run = status["monitoring"]
            headline = [v for v in run["values"] if v["check"] != "drift-column" and v["value"] is not None]
            parts.append(f"last monitoring: v{run['version']} window {run['window'][0][:10]}..{run['window'][1][:10]} "
                         f"verdict={run['verdict']}"
                         # A verdict only beside a value judged against a limit; the others are context.
                         + "".join(f" {v['metric']}={number(v['value'])}"
                                   + (f" ({v['verdict']})" if v.get("limit") is not None else "") for v in headline))
    return parts if mlflow else [*parts, STORE_ONLY_NOTE]


STATUS_SEPARATOR = "\n\n"


def status_text(platform: Platform, models: Sequence[str] | None, metrics: dict[str, str], mlflow: bool = True) -> str:
    return plain_text(status_blocks(platform, models, metrics, mlflow), STATUS_SEPARATOR)


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
