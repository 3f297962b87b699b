"""The compliance report of one model: a model card built from its spec, the governance store and the audit trail
(purpose, owner, risk tier, data, metrics, fairness, approvals with their evidence, deployments, monitoring history,
open findings), rendered as Markdown or as HTML.

The report is one document (sections of paragraphs, lists and tables) rendered two ways, so the Markdown and the
HTML always say the same. Everything shown comes from records people and flows wrote (a spec's description, an
approver's comment, a monitored column's name): the HTML escapes every value, the Markdown escapes table cells.
`modelops report <model>` writes it; the `report` flow publishes the Markdown as a Prefect artifact.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from modelops.cli_output import flat, number
from modelops.fairness_evidence import measured_gaps
from modelops.kpis import Spread, by_version, first_served_at, hours, last_validated_at, registered_at, \
    revalidation_due
from modelops.lifecycle import Stage
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.records import utcnow
from tasks.plots import data_uri, history_png, markdown_image

MONITORING_RUNS_SHOWN = 20  # newest runs in the history table; the counts cover all


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Image:
    """A PNG shown inline (as a data: URI: the report stays one self-contained document)."""

    alt: str
    png: bytes


@dataclass
class Section:
    title: str
    # a paragraph, a bullet list, a table or an image
    blocks: list[str | list[str] | Table | Image] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]


def cell(value: Any) -> str:
    return "-" if value is None or value == "" else number(value) if isinstance(value, float) else str(value)


# --- rendering ----------------------------------------------------------------------------------------------
# Characters that make Markdown (or the HTML it may carry) of plain text: a link, an image, a tag, a code span,
# emphasis, a cell boundary. Text that people or data supply (an approver's comment, a retirement reason, a value
# quoted from a refused row) is shown as written, never as a heading, a link or a tracking image.
_MARKDOWN_ACTIVE = str.maketrans({c: "\\" + c for c in "\\`*[]<|"})


def md_text(value: Any) -> str:
    """`value` as literal text on one line of a Markdown document: active characters escaped, line breaks spaces,
    a leading # or > not a heading or a quotation."""
    text = cell(value).translate(_MARKDOWN_ACTIVE).replace("\r", " ").replace("\n", " ")
    return "\\" + text if text.startswith(("#", ">")) else text


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", report.subtitle]
    for section in report.sections:
        lines += ["", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += [markdown_table(block.headers, block.rows) if block.rows else "None.", ""]
            elif isinstance(block, Image):
                lines += [markdown_image(block.png, block.alt), ""]
            elif isinstance(block, list):
                lines += [f"- {' '.join(item.splitlines())}" for item in block] or ["None."]
                lines.append("")
            else:
                lines += [block, ""]
        while lines and lines[-1] == "":
            lines.pop()
    return "\n".join(lines) + "\n"


_STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;"
          "text-align:left;vertical-align:top}th{background:#f3f3f3}")


def to_html(report: Report) -> str:
    """A standalone page; every value is escaped (records hold text people typed)."""
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{esc(report.title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{esc(report.title)}</h1>", f"<p>{esc(report.subtitle)}</p>"]
    for section in report.sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                if not block.rows:
                    out.append("<p>None.</p>")
                    continue
                out.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.headers)
                           + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{esc(cell(v))}</td>" for v in row) + "</tr>" for row in block.rows]
                out.append("</tbody></table>")
            elif isinstance(block, Image):
                out.append(f"<p><img alt=\"{esc(block.alt)}\" src=\"{data_uri(block.png)}\"></p>")
            elif isinstance(block, list):
                out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block) + "</ul>" if block
                           else "<p>None.</p>")
            else:
                out.append(f"<p>{esc(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- the content --------------------------------------------------------------------------------------------
def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _card(spec: LifecycleSpec) -> Section:
    approval = spec.approval
    return Section("Model card", [Table(["field", "value"], [
        ["purpose", spec.description or "(no description in the spec)"],
        ["owner", spec.owner], ["risk tier", spec.risk_tier.value], ["task", spec.task],
        ["approval", "automatic when every rule passes" if spec.risk_tier in approval.automatic_for_tiers
         else "a person decides"],
        ["revalidation", f"every {spec.validation.revalidate_days} days" if spec.validation.revalidate_days
         else "not required"],
        ["deployment", f"{spec.deploy.strategy} ({', '.join(spec.deploy.targets)})"]])])


def _data(platform: Platform, spec: LifecycleSpec) -> Section:
    data = spec.data
    facts = [f"Loader `{data.loader}`; target `{data.target}`; id `{data.id_column}`; time `{data.timestamp_column}`.",
             f"Features: numerical {', '.join(data.features.numerical) or '-'}; categorical "
             f"{', '.join(data.features.categorical) or '-'}.",
             f"Protected attributes: {', '.join(data.protected_attributes) or 'none listed'}."]
    rows = [[f"v{row.version}", row.source,
             f"{row.train_start:%Y-%m-%d}..{row.train_end:%Y-%m-%d}" if row.train_start and row.train_end else "-",
             (row.data_hash or "-")[:12], (row.code_version or "-")[:12],
             f"v{row.parent_version}" if row.parent_version else "-"] for row in platform.store.lineage(spec.name)]
    return Section("Data", [" ".join(facts), Table(["version", "source", "trained on", "data hash", "code version",
                                                     "parent"], rows)])


def _metrics(platform: Platform, spec: LifecycleSpec) -> Section:
    from modelops.reporting import version_records

    thresholds = "; ".join(f"{name} " + " ".join(f"{side} {value}" for side, value in
                                                 (("min", bound.min), ("max", bound.max)) if value is not None)
                           for name, bound in spec.validation.metric_thresholds.items())
    governed = {g.version: g for g in platform.store.governed_versions(spec.name)}
    names = sorted({name for g in governed.values() for name in g.holdout_metrics})
    rows = [[f"v{r['version']}", r["state"], r["validation"], r["approval"], r["lead_time"],
             *(governed[r["version"]].holdout_metrics.get(name) for name in names)]
            for r in version_records(platform, spec.name, None)]
    return Section("Versions and holdout metrics", [
        f"Validation thresholds: {thresholds}. Approval floors: "
        + ("; ".join(f"{k} {v}" for k, v in spec.approval.min_metrics.items()) or "none") + ".",
        Table(["version", "state", "validation", "approval", "lead time (registered->serving)", *names], rows)])


def _fairness(spec: LifecycleSpec, trail: Sequence[Any]) -> Section:
    policy = spec.validation.fairness
    if policy is None:
        return Section("Fairness", ["No protected attributes are listed in the spec: bias is not measured."])
    rows = []
    for entry in trail:
        if entry.stage != Stage.validate or entry.action != "run-gates":
            continue
        for attribute, metrics in (entry.evidence.get("fairness") or {}).items():
            for metric, measured in measured_gaps(metrics):
                value, limit = measured.get("value"), measured.get("limit")
                verdict = "not computed" if value is None else "over the limit" if value > limit else "within"
                rows.append([_when(entry.at), f"v{entry.version}", attribute, metric, value, limit, verdict,
                             measured.get("note")])
    limits = ", ".join(f"{metric} <= {limit}" for metric, limit in policy.limits.items())
    return Section("Fairness", [f"Limits on {', '.join(spec.data.protected_attributes)}: {limits} (groups of at "
                                f"least {policy.min_group_rows} rows), at validation and in monitoring.",
                                Table(["validated", "version", "attribute", "metric", "value", "limit", "verdict",
                                       "note"], rows)])


def _approvals(trail: Sequence[Any]) -> Section:
    """Each decision with the evidence it stood on: the version's validation verdict recorded before it."""
    rows, validation = [], {}
    for entry in trail:
        if entry.stage == Stage.validate and entry.action == "run-gates":
            metrics = ", ".join(f"{k}={number(v)}" for k, v in (entry.evidence.get("metrics") or {}).items())
            failures = "; ".join(entry.evidence.get("failures") or [])
            fairness = ", ".join(f"{metric} on {attribute} {cell(m.get('value'))} (limit {cell(m.get('limit'))})"
                                 for attribute, measured in (entry.evidence.get("fairness") or {}).items()
                                 for metric, m in measured_gaps(measured))
            validation[entry.version] = (f"validation {entry.outcome} {_when(entry.at)}: {metrics}"
                                         + (f"; fairness: {fairness}" if fairness else "")
                                         + (f"; failures: {failures}" if failures else ""))
        elif entry.stage == Stage.approve:
            reasons = "; ".join(entry.evidence.get("reasons") or []) or flat(
                {k: v for k, v in entry.evidence.items() if k != "content_hash"})
            rows.append([_when(entry.at), f"v{entry.version}", entry.action, entry.outcome, entry.actor, reasons,
                         validation.get(entry.version, "no validation recorded")])
    return Section("Approvals", [Table(["when (UTC)", "version", "action", "decision", "by", "reasons",
                                        "evidence"], rows)])


def _deployments(platform: Platform, spec: LifecycleSpec, trail: Sequence[Any]) -> Section:
    from tasks.integrity import ROLES

    serving = {role: platform.store.serving_version(spec.name, role) for role in ROLES}
    now = ", ".join(f"v{version} as {role}" for role, version in serving.items() if version) or "nothing"
    rows = [[_when(e.at), f"v{e.version}", e.action, e.actor,
             flat({k: v for k, v in e.evidence.items() if k in ("role", "strategy", "replaced", "reason")})]
            for e in trail if e.stage in (Stage.deploy, Stage.retire)]
    return Section("Deployments", [f"Serving now: {now}.", Table(["when (UTC)", "version", "action", "by",
                                                                  "details"], rows)])


def _monitoring(platform: Platform, spec: LifecycleSpec, plots: bool) -> Section:
    history = platform.store.monitoring_history(spec.name)
    counts: dict[str, int] = {}
    for run, _ in history:
        counts[run.verdict] = counts.get(run.verdict, 0) + 1
    rows = [[_when(run.run_at), run.kind, f"v{run.version}", f"{run.window_start:%Y-%m-%d}..{run.window_end:%Y-%m-%d}",
             run.rows, run.verdict,
             ", ".join(sorted({f"{r.check}:{r.metric}" for r in results if breached_limit(r)})) or "-"]
            for run, results in history[-MONITORING_RUNS_SHOWN:]]
    summary = (f"{len(history)} monitoring runs: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
               + (f"; the newest {MONITORING_RUNS_SHOWN} below." if len(history) > MONITORING_RUNS_SHOWN else ".")
               if history else "Never monitored.")
    png = history_png(history, spec) if plots else None
    plot = [Image(f"{spec.name}: drift share, {spec.monitoring.performance.metric} and latency p95 by window, with "
                  "their breach limits", png)] if png else []
    return Section("Monitoring history", [summary, *plot, Table(["run (UTC)", "kind", "version", "window", "rows",
                                                                 "verdict", "breached values"], rows)])


def breached_limit(result: Any) -> bool:
    """A monitored value past its limit (context values without a limit share their check's verdict; the drift
    share stands for its columns)."""
    return result.verdict == "breach" and result.threshold is not None and result.check != "drift-column"


def open_findings(platform: Platform, spec: LifecycleSpec, trail: Sequence[Any], as_of: datetime) -> list[str]:
    """What needs someone's attention: the catalog and the store disagreeing (reporting.findings_text), gate rows
    no audit record accounts for, breaches of the newest monitoring run, and a serving version past its
    revalidation date."""
    from modelops.reporting import findings_text

    findings = findings_text(platform, spec.name)
    findings += [f"FINDING: {problem}" for problem in platform.store.unbacked_state(spec.name)]
    monitors = [item for item in platform.store.monitoring_history(spec.name) if item[0].kind == "monitor"]
    if monitors:
        run, results = monitors[-1]
        findings += [f"BREACH: v{run.version} {r.check} {r.metric}={number(r.value)} (limit {number(r.threshold)}) "
                     f"in the window ending {run.window_end:%Y-%m-%d}"
                     for r in results if breached_limit(r)]
    champion = platform.store.serving_version(spec.name, "champion")
    if champion:
        due = revalidation_due(spec, last_validated_at(by_version(trail).get((spec.name, champion), [])))
        if due is not None and due < as_of:
            findings.append(f"OVERDUE: champion v{champion} was due for revalidation on {due:%Y-%m-%d} "
                            f"(`modelops validate {spec.name} --version {champion} --force`)")
    return findings


def compliance_report(platform: Platform, spec: LifecycleSpec, as_of: datetime | None = None,
                      plots: bool = True) -> Report:
    """`plots`: include the monitoring history's plot (a PNG inline: for files and artifacts, not a terminal)."""
    as_of = as_of or utcnow()
    trail = platform.store.audit_trail(spec.name)
    versions = by_version(trail)
    lead = Spread.of([hours(r, s) for entries in versions.values()
                      if (r := registered_at(entries)) and (s := first_served_at(entries))])
    subtitle = (f"Generated {as_of:%Y-%m-%d %H:%M} UTC from the governance store and its audit trail "
                f"({len(trail)} records, newest #{trail[-1].seq} {trail[-1].record_hash[:12]}); "
                if trail else f"Generated {as_of:%Y-%m-%d %H:%M} UTC; no audit records yet; ") + \
        (f"lead time registration -> serving: {lead.text()} version(s)." if lead.count else
         "no version has served yet.")
    return Report(f"Compliance report: {spec.name}", subtitle, [
        _card(spec), _data(platform, spec), _metrics(platform, spec), _fairness(spec, trail), _approvals(trail),
        _deployments(platform, spec, trail), _monitoring(platform, spec, plots),
        Section("Open findings", [open_findings(platform, spec, trail, as_of)])])


def render(report: Report, fmt: str) -> str:
    return to_html(report) if fmt == "html" else to_markdown(report)


def cmd_report(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    fmt = args.format or ("html" if args.output and args.output.endswith((".html", ".htm")) else "markdown")
    # The plot travels inline as base64: written to a file it shows, printed to a terminal it would be noise.
    text = render(compliance_report(get_platform(), load_spec(args.model), plots=bool(args.output)), fmt)
    if args.output:
        from modelops.files import replace_atomically

        path = Path(args.output)
        replace_atomically(path, lambda handle: handle.write(text.encode()))
        print(f"wrote the {fmt} compliance report of {args.model} to {path}")
    else:
        print(text, end="")
    return 0
