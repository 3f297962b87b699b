"""What `modelops status`, `modelops audit` and the demo print: plain-text tables over the systems of record."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from modelops.platform import Platform


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


def version_rows(platform: Platform, model: str, metric: str | None) -> list[list[Any]]:
    """One row per version: state, aliases, verdicts, holdout metric, lead time registered -> serving."""
    registered = {row.version: row for row in platform.store.lineage(model)}
    rows = []
    for info in platform.catalog.versions(model):
        lineage = registered.get(info.version)
        served = platform.store.first_served_at(model, info.version)
        window = f"{info.tags.get('train_start', '?')}..{info.tags.get('train_end', '?')}" \
            if info.tags.get("train_start") else info.tags.get("source", "")
        value = info.tags.get(f"holdout_{metric}") if metric else None
        rows.append([f"v{info.version}", ",".join(f"@{a}" for a in info.aliases) or "-",
                     info.tags.get("lifecycle_state", "-"), window, info.tags.get("validation_status", "-"),
                     info.tags.get("approval_status", "-"), f"{float(value):.4f}" if value else "-",
                     _duration(lineage.registered_at if lineage else None, served)])
    return rows


VERSION_HEADERS = ["version", "aliases", "state", "trained on", "validation", "approval", "holdout {metric}",
                   "lead time (registered->serving)"]


def status_text(platform: Platform, models: Sequence[str], metrics: dict[str, str]) -> str:
    if not models:
        return "No models registered yet. Run `modelops demo` or `modelops register <model>`."
    parts = []
    for model in models:
        metric = metrics.get(model)
        headers = [h.format(metric=metric or "metric") for h in VERSION_HEADERS]
        parts.append(f"== {model}\n" + format_table(headers, version_rows(platform, model, metric)))
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
