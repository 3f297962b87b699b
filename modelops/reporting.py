"""What `modelops status`, `modelops audit` and the demo print: plain-text tables over the systems of record."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from modelops.platform import Platform
from modelops.store.records import GovernedVersion
from tasks.integrity import ROLES, alias_findings, tag_differences


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _state(governed: GovernedVersion, roles: list[str], approval: str | None) -> str:
    if governed.retired:
        return "retired"
    if roles:
        return "serving"
    if approval in ("approved", "rejected", "pending"):
        return approval
    return {"passed": "validated", "failed": "validation_failed"}.get(governed.validation_status or "", "registered")


def version_rows(platform: Platform, model: str, metric: str | None) -> list[list[Any]]:
    """One row per governed version, from the governance store: serving role, state, verdicts, holdout metric,
    lead time registered -> serving; MLflow's aliases are shown beside it (they only mirror the store)."""
    store = platform.store
    aliases: dict[str, list[str]] = {}
    for alias, version in platform.catalog.aliases_or_empty(model).items():
        aliases.setdefault(version, []).append(f"@{alias}")
    serving = {role: store.serving_version(model, role) for role in ROLES}
    rows = []
    for governed in store.governed_versions(model):
        roles = [role for role, version in serving.items() if version == governed.version]
        served = store.first_served_at(model, governed.version)
        window = (f"{governed.train_start:%Y-%m-%d}..{governed.train_end:%Y-%m-%d}"
                  if governed.train_start and governed.train_end else governed.source)
        value = governed.holdout_metrics.get(metric) if metric else None
        approval = store.approval_status(model, governed.version)
        rows.append([f"v{governed.version}", ",".join(roles) or "-", ",".join(sorted(aliases.get(governed.version, [])))
                     or "-", _state(governed, roles, approval), window, governed.validation_status or "-",
                     approval or "-", f"{value:.4f}" if value is not None else "-",
                     _duration(governed.registered_at, served)])
    return rows


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


def status_text(platform: Platform, models: Sequence[str], metrics: dict[str, str]) -> str:
    if not models:
        return "No models registered yet. Run `modelops demo` or `modelops register <model>`."
    parts = []
    for model in models:
        metric = metrics.get(model)
        headers = [h.format(metric=metric or "metric") for h in VERSION_HEADERS]
        parts.append(f"== {model}\n" + format_table(headers, version_rows(platform, model, metric)))
        parts += findings_text(platform, model)
        history = [item for item in platform.store.monitoring_history(model) if item[0].kind == "monitor"]
        sweeps = [run for run, _ in platform.store.monitoring_history(model) if run.kind == "sweep"]
        if sweeps:
            parts.append(f"last sweep: v{sweeps[-1].version} drift verdict={sweeps[-1].verdict}")
        if history:
            run, results = history[-1]
            drift = next((r for r in results if r.check == "drift"), None)
            perf = next((r for r in results if r.check == "performance"), None)
            parts.append(
                f"last monitoring: v{run.version} window {run.window_start:%Y-%m-%d}..{run.window_end:%Y-%m-%d} "
                f"verdict={run.verdict}"
                + (f" drift_share={drift.value:.2f} ({drift.verdict})" if drift and drift.value is not None else "")
                + (f" {perf.metric}={perf.value:.4f} ({perf.verdict})" if perf and perf.value is not None else ""))
    return "\n\n".join(parts)


def audit_text(platform: Platform, model: str) -> str:
    trail = platform.store.audit_trail(model)
    if not trail:
        return f"No audit entries for {model}."
    rows = []
    for entry in trail:
        evidence = ", ".join(f"{k}={v}" for k, v in entry.evidence.items() if v not in (None, [], {}, ""))
        rows.append([entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.stage, entry.action,
                     f"v{entry.version}" if entry.version else "-", entry.outcome,
                     evidence[:110] + ("..." if len(evidence) > 110 else "")])
    return format_table(["when (UTC)", "who", "stage", "what", "version", "outcome", "evidence"], rows)
