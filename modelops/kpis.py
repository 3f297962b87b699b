"""Life cycle KPIs across every model, read from the audit trail (and the store's serving and monitoring records):
lead time from registration to serving, approval wait, the share of serving models monitored and within their
thresholds, versions past their revalidation date, and retrains and rollbacks per month.

`modelops kpis` prints them (a table, or --json); the scheduled `kpis` flow publishes them as Prefect artifacts.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from modelops.lifecycle import REGISTER_ACTIONS, ApprovalStatus, Role, Stage
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from modelops.store.audit_chain import AuditEntry
from modelops.store.records import as_utc, utcnow
from tasks.verdicts import BREACH, SKIPPED

SERVE_AS_CHAMPION = f"serve-as-{Role.champion}"
MONITORED_WITHIN_DAYS = 7  # a serving model without a monitoring run this recent is not monitored


def hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def duration_text(value_hours: float | None) -> str:
    if value_hours is None:
        return "-"
    seconds = value_hours * 3600
    return (f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200
            else f"{value_hours:.1f} h" if value_hours < 72 else f"{value_hours / 24:.1f} d")


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile (hours) over `count` cases."""

    count: int
    median_hours: float | None
    p90_hours: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            return cls(0, None, None)
        ordered = sorted(values)
        return cls(len(ordered), statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                                         round(0.9 * (len(ordered) - 1)))])

    def text(self) -> str:
        if not self.count:
            return "no cases yet"
        return f"median {duration_text(self.median_hours)}, p90 {duration_text(self.p90_hours)} over {self.count}"


def _first(entries: Iterable[AuditEntry], after: datetime | None = None) -> AuditEntry | None:
    return next((e for e in entries if after is None or e.at >= after), None)


def by_version(trail: Sequence[AuditEntry]) -> dict[tuple[str, str], list[AuditEntry]]:
    """The trail's records of each (model, version), oldest first."""
    out: dict[tuple[str, str], list[AuditEntry]] = {}
    for entry in trail:
        if entry.version is not None:
            out.setdefault((entry.model, entry.version), []).append(entry)
    return out


def registered_at(entries: Sequence[AuditEntry]) -> datetime | None:
    found = _first(e for e in entries if e.stage == Stage.register and e.action in REGISTER_ACTIONS)
    return found.at if found else None


def first_served_at(entries: Sequence[AuditEntry]) -> datetime | None:
    found = _first(e for e in entries if e.stage == Stage.deploy and e.action == SERVE_AS_CHAMPION)
    return found.at if found else None


def last_validated_at(entries: Sequence[AuditEntry]) -> datetime | None:
    validations = [e.at for e in entries if e.stage == Stage.validate and e.action == "run-gates"]
    return validations[-1] if validations else None


def approval_wait(entries: Sequence[AuditEntry]) -> float | None:
    """Hours from the validation verdict that passed (the evidence is complete) to the first approval decision
    after it, by policy or by a person; None while it waits, or when it was never validated."""
    validated = _first(e for e in entries if e.stage == Stage.validate and e.outcome == "passed")
    if validated is None:
        return None
    decided = _first((e for e in entries if e.stage == Stage.approve
                      and e.outcome in (ApprovalStatus.approved, ApprovalStatus.rejected)), validated.at)
    return hours(validated.at, decided.at) if decided else None


def revalidation_due(spec: LifecycleSpec | None, validated: datetime | None) -> datetime | None:
    if spec is None or validated is None or spec.validation.revalidate_days is None:
        return None
    return validated + timedelta(days=spec.validation.revalidate_days)


def is_rollback(entry: AuditEntry) -> bool:
    """A champion deployment that brings back an older version than the one it replaced."""
    replaced = [v for v in entry.evidence.get("replaced") or [] if str(v).isdigit()]
    return (entry.stage == Stage.deploy and entry.action == SERVE_AS_CHAMPION and bool(replaced)
            and str(entry.version).isdigit() and int(entry.version) < max(int(v) for v in replaced))


def is_retrain(entry: AuditEntry) -> bool:
    """A retrain that produced a new challenger (one that re-trained the champion's own inputs nominates nothing)."""
    return entry.stage == Stage.retrain and entry.action == "nominate-challenger"


@dataclass
class ServingModel:
    model: str
    version: str
    monitored_at: str | None  # newest monitoring run of the serving version
    verdict: str | None  # its verdict
    monitored: bool
    within_thresholds: bool
    validated_at: str | None
    revalidation_due: str | None
    past_revalidation: bool


@dataclass
class Kpis:
    as_of: str
    models: int
    lead_time: Spread
    approval_wait: Spread
    serving: list[ServingModel] = field(default_factory=list)
    per_month: dict[str, dict[str, int]] = field(default_factory=dict)  # YYYY-MM -> retrains, rollbacks

    @property
    def monitored(self) -> int:
        return sum(s.monitored for s in self.serving)

    @property
    def within_thresholds(self) -> int:
        return sum(s.within_thresholds for s in self.serving)

    def past_revalidation(self) -> list[ServingModel]:
        return [s for s in self.serving if s.past_revalidation]

    def share(self, count: int) -> float | None:
        return count / len(self.serving) if self.serving else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "serving_models": len(self.serving), "monitored": self.monitored,
                "monitored_share": self.share(self.monitored), "within_thresholds": self.within_thresholds,
                "within_thresholds_share": self.share(self.within_thresholds),
                "past_revalidation": [s.model for s in self.past_revalidation()]}


def _serving_model(platform: Platform, spec: LifecycleSpec | None, model: str, version: str,
                   entries: Sequence[AuditEntry], as_of: datetime) -> ServingModel:
    runs = [run for run in platform.store.recent_monitoring(model, 50) if run.kind == "monitor"
            and run.version == version]
    newest = runs[-1] if runs else None
    run_at = as_utc(newest.run_at) if newest else None
    monitored = run_at is not None and as_of - run_at <= timedelta(days=MONITORED_WITHIN_DAYS)
    validated = last_validated_at(entries)
    due = revalidation_due(spec, validated)
    return ServingModel(model=model, version=version, monitored_at=run_at.isoformat() if run_at else None,
                        verdict=newest.verdict if newest else None, monitored=monitored,
                        within_thresholds=monitored and newest is not None and newest.verdict not in (BREACH, SKIPPED),
                        validated_at=validated.isoformat() if validated else None,
                        revalidation_due=due.isoformat() if due else None,
                        past_revalidation=due is not None and due < as_of)


def compute_kpis(platform: Platform, specs: Sequence[LifecycleSpec], as_of: datetime | None = None) -> Kpis:
    """The KPIs of every model in the audit trail, as of now (or `as_of`: versions due by then count as past)."""
    as_of = as_utc(as_of) if as_of else utcnow()
    trail = [e for e in platform.store.audit_trail() if e.at <= as_of]
    versions = by_version(trail)
    lead_times, waits = [], []
    for entries in versions.values():
        registered, served = registered_at(entries), first_served_at(entries)
        if registered and served:
            lead_times.append(hours(registered, served))
        wait = approval_wait(entries)
        if wait is not None:
            waits.append(wait)
    per_month: dict[str, dict[str, int]] = {}
    for entry in trail:
        for kind, counted in (("retrains", is_retrain(entry)), ("rollbacks", is_rollback(entry))):
            if counted:
                month = per_month.setdefault(f"{entry.at:%Y-%m}", {"retrains": 0, "rollbacks": 0})
                month[kind] += 1
    by_name = {spec.name: spec for spec in specs}
    serving = [_serving_model(platform, by_name.get(row.model), row.model, row.version,
                              versions.get((row.model, row.version), []), as_of)
               for row in sorted(platform.store.serving_snapshot(), key=lambda r: r.model) if row.role == Role.champion]
    return Kpis(as_of=as_of.isoformat(), models=len({e.model for e in trail if e.version is not None}),
                lead_time=Spread.of(lead_times), approval_wait=Spread.of(waits), serving=serving,
                per_month=dict(sorted(per_month.items())))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def kpi_summary_rows(kpis: Kpis) -> list[tuple[str, str]]:
    """The headline KPIs as (name, value) pairs: the CLI table and the artifact show the same."""
    past = kpis.past_revalidation()
    return [("lead time registration -> serving", kpis.lead_time.text()),
            ("approval wait (validated -> decided)", kpis.approval_wait.text()),
            ("serving models", str(len(kpis.serving))),
            (f"monitored (a run in the last {MONITORED_WITHIN_DAYS} days)",
             f"{kpis.monitored} ({_percent(kpis.share(kpis.monitored))})"),
            ("within thresholds (newest run without a breach)",
             f"{kpis.within_thresholds} ({_percent(kpis.share(kpis.within_thresholds))})"),
            ("past revalidation date", f"{len(past)}" + (f": {', '.join(f'{s.model} v{s.version}' for s in past)}"
                                                         if past else ""))]


SERVING_HEADERS = ["model", "version", "monitored", "verdict", "validated", "revalidation due"]


def serving_rows(kpis: Kpis) -> list[list[str]]:
    return [[s.model, f"v{s.version}", (s.monitored_at or "never")[:16], s.verdict or "-",
             (s.validated_at or "-")[:10], (s.revalidation_due or "never")[:10] + (" PAST" if s.past_revalidation
                                                                                   else "")]
            for s in kpis.serving]


def month_rows(kpis: Kpis) -> list[list[Any]]:
    return [[month, counts["retrains"], counts["rollbacks"]] for month, counts in kpis.per_month.items()]


def kpis_text(kpis: Kpis) -> str:
    from modelops.reporting import format_table

    parts = [f"Life cycle KPIs as of {kpis.as_of[:16].replace('T', ' ')} UTC ({kpis.models} models in the audit "
             "trail)", format_table(["KPI", "value"], kpi_summary_rows(kpis))]
    if kpis.serving:
        parts.append("Serving champions:\n" + format_table(SERVING_HEADERS, serving_rows(kpis)))
    parts.append("Per month:\n" + format_table(["month", "retrains", "rollbacks"], month_rows(kpis))
                 if kpis.per_month else "Per month: no retrains or rollbacks yet")
    return "\n\n".join(parts)


def kpis_markdown(kpis: Kpis) -> str:
    """The same KPIs as a Markdown page (the flow's artifact)."""
    from modelops.compliance import markdown_table

    lines = [f"# Life cycle KPIs, {kpis.as_of[:16].replace('T', ' ')} UTC", "",
             markdown_table(["KPI", "value"], kpi_summary_rows(kpis)), ""]
    if kpis.serving:
        lines += ["## Serving champions", "", markdown_table(SERVING_HEADERS, serving_rows(kpis)), ""]
    lines += ["## Retrains and rollbacks per month", "",
              markdown_table(["month", "retrains", "rollbacks"], month_rows(kpis)) if kpis.per_month else
              "None yet."]
    return "\n".join(lines)


def cmd_kpis(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from modelops.spec import load_all_specs

    kpis = compute_kpis(get_platform(), load_all_specs(), as_utc(datetime.fromisoformat(args.as_of))
                        if args.as_of else None)
    if args.json:
        from modelops.cli_output import as_json

        print(as_json(kpis.as_dict()))
    else:
        print(kpis_text(kpis))
    return 0
