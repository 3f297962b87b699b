"""Reading and writing the governance store: the only module that issues its queries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from modelops.store.db import session_scope
from modelops.store.schema import (
    AlertDelivery, AlertState, Approval, AuditEvent, Deployment, GroundTruthBatch, Lineage, MonitoringResult,
    MonitoringRun, PredictionBatch, RetrainRequest,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Any datetime as aware UTC (naive values are taken to be UTC already)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    stage: str
    action: str
    model: str
    version: str | None
    outcome: str
    evidence: dict[str, Any]
    event: str | None
    flow_run_id: str | None


@dataclass(frozen=True)
class MonitoringPoint:
    check: str
    metric: str
    value: float | None
    threshold: float | None
    verdict: str


class GovernanceStore:
    def __init__(self, url: str) -> None:
        self.url = url

    # --- audit trail -------------------------------------------------------------------------------------
    def record_audit(self, *, actor: str, stage: str, action: str, model: str, version: str | None, outcome: str,
                     evidence: dict[str, Any], event: str | None = None, flow_run_id: str | None = None) -> bool:
        """Append an audit entry; the same fact recorded twice stays one row. Returns True when written."""
        canonical = json.dumps([stage, action, model, version, outcome, evidence], sort_keys=True, default=str)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        row = AuditEvent(at=utcnow(), actor=actor, stage=stage, action=action, model=model, version=version,
                         outcome=outcome, evidence=json.loads(json.dumps(evidence, default=str)), event=event,
                         flow_run_id=flow_run_id, dedup_key=key)
        try:
            with session_scope(self.url) as session:
                if session.scalar(select(AuditEvent.id).where(AuditEvent.dedup_key == key)) is not None:
                    return False
                session.add(row)
        except IntegrityError:
            return False  # a concurrent run recorded the same fact first
        return True

    def has_audit(self, model: str, stage: str, version: str | None) -> bool:
        with session_scope(self.url) as session:
            return session.scalar(select(AuditEvent.id).where(
                AuditEvent.model == model, AuditEvent.stage == stage, AuditEvent.version == version).limit(1)) \
                is not None

    def audit_trail(self, model: str | None = None) -> list[AuditEntry]:
        with session_scope(self.url) as session:
            query = select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id)
            if model:
                query = query.where(AuditEvent.model == model)
            return [AuditEntry(at=_aware(r.at), actor=r.actor, stage=r.stage, action=r.action, model=r.model,
                               version=r.version, outcome=r.outcome, evidence=r.evidence, event=r.event,
                               flow_run_id=r.flow_run_id) for r in session.scalars(query)]

    # --- approvals ---------------------------------------------------------------------------------------
    def record_approval(self, model: str, version: str, status: str, reasons: list[str], decided_by: str) -> None:
        with session_scope(self.url) as session:
            row = session.scalar(select(Approval).where(Approval.model == model, Approval.version == version))
            if row is None:
                row = Approval(model=model, version=version)
                session.add(row)
            row.status, row.reasons, row.decided_by, row.decided_at = status, reasons, decided_by, utcnow()

    def approval_status(self, model: str, version: str) -> str | None:
        with session_scope(self.url) as session:
            return session.scalar(select(Approval.status).where(Approval.model == model, Approval.version == version))

    # --- deployments -------------------------------------------------------------------------------------
    def start_deployment(self, model: str, version: str, role: str, strategy: str, deployed_by: str) -> int | None:
        """Record that version serves as role, ending whoever held the role. Returns the new deployment's id,
        or None when the version already held the role."""
        now = utcnow()
        with session_scope(self.url) as session:
            active = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.role == role, Deployment.ended_at.is_(None))).all()
            if any(row.version == version for row in active):
                return None
            for row in active:
                row.ended_at, row.ended_reason = now, f"replaced by version {version}"
            deployment = Deployment(model=model, version=version, role=role, strategy=strategy,
                                    deployed_by=deployed_by, deployed_at=now)
            session.add(deployment)
            session.flush()
            return deployment.id

    def end_deployments(self, model: str, version: str, reason: str) -> int:
        with session_scope(self.url) as session:
            active = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.version == version, Deployment.ended_at.is_(None))).all()
            for row in active:
                row.ended_at, row.ended_reason = utcnow(), reason
            return len(active)

    def first_served_at(self, model: str, version: str) -> datetime | None:
        with session_scope(self.url) as session:
            return _aware(session.scalar(select(Deployment.deployed_at).where(
                Deployment.model == model, Deployment.version == version, Deployment.role == "champion",
            ).order_by(Deployment.deployed_at).limit(1)))

    # --- lineage -----------------------------------------------------------------------------------------
    def record_lineage(self, *, model: str, version: str, source: str, model_uri: str, run_id: str | None,
                       parent_version: str | None, train_start: datetime | None, train_end: datetime | None,
                       data_hash: str | None, code_version: str | None) -> None:
        with session_scope(self.url) as session:
            exists = session.scalar(select(Lineage.id).where(Lineage.model == model, Lineage.version == version))
            if exists is None:
                session.add(Lineage(model=model, version=version, source=source, model_uri=model_uri, run_id=run_id,
                                    parent_version=parent_version, train_start=train_start, train_end=train_end,
                                    data_hash=data_hash, code_version=code_version, registered_at=utcnow()))

    def lineage(self, model: str) -> list[Lineage]:
        with session_scope(self.url) as session:
            rows = session.scalars(select(Lineage).where(Lineage.model == model).order_by(Lineage.id)).all()
            session.expunge_all()  # detached: normalising datetimes below must not turn a read into an UPDATE
            for row in rows:
                row.registered_at = _aware(row.registered_at)
            return list(rows)

    # --- prediction log and ground truth index -----------------------------------------------------------
    def record_prediction_batch(self, batch: PredictionBatch) -> None:
        with session_scope(self.url) as session:
            session.merge(batch)

    def prediction_batches(self, model: str, version: str | None = None, start: datetime | None = None,
                           end: datetime | None = None, include_failed: bool = False) -> list[PredictionBatch]:
        with session_scope(self.url) as session:
            query = select(PredictionBatch).where(PredictionBatch.model == model)
            if not include_failed:
                query = query.where(PredictionBatch.status == "ok")
            if version is not None:
                query = query.where(PredictionBatch.version == version)
            if start is not None:
                query = query.where(PredictionBatch.last_event_at >= as_utc(start))
            if end is not None:
                query = query.where(PredictionBatch.first_event_at < as_utc(end))
            rows = session.scalars(query.order_by(PredictionBatch.first_event_at)).all()
            session.expunge_all()  # detached: normalising datetimes below must not turn a read into an UPDATE
            for row in rows:
                row.first_event_at, row.last_event_at = _aware(row.first_event_at), _aware(row.last_event_at)
            return list(rows)

    def record_ground_truth_batch(self, batch: GroundTruthBatch) -> None:
        with session_scope(self.url) as session:
            session.merge(batch)

    def ground_truth_batches(self, model: str) -> list[GroundTruthBatch]:
        with session_scope(self.url) as session:
            return list(session.scalars(select(GroundTruthBatch).where(GroundTruthBatch.model == model)))

    # --- monitoring time series --------------------------------------------------------------------------
    def record_monitoring_run(self, *, model: str, version: str, window_start: datetime, window_end: datetime,
                              rows: int, verdict: str, report_path: str | None,
                              points: Iterable[MonitoringPoint], kind: str = "monitor") -> int:
        with session_scope(self.url) as session:
            run = MonitoringRun(model=model, version=version, window_start=as_utc(window_start),
                                window_end=as_utc(window_end),
                                run_at=utcnow(), rows=rows, verdict=verdict, report_path=report_path, kind=kind)
            session.add(run)
            session.flush()
            session.add_all(MonitoringResult(run_id=run.id, check=p.check, metric=p.metric, value=p.value,
                                             threshold=p.threshold, verdict=p.verdict) for p in points)
            return run.id

    def record_monitoring_runs(self, runs: list[dict[str, Any]]) -> int:
        """Many monitoring runs (each a dict of record_monitoring_run's arguments) in one transaction."""
        now = utcnow()
        with session_scope(self.url) as session:
            rows = [MonitoringRun(model=r["model"], version=r["version"], window_start=as_utc(r["window_start"]),
                                  window_end=as_utc(r["window_end"]), run_at=now, rows=r["rows"],
                                  verdict=r["verdict"], report_path=r["report_path"], kind=r.get("kind", "sweep"))
                    for r in runs]
            session.add_all(rows)
            session.flush()
            session.execute(insert(MonitoringResult), [
                {"run_id": row.id, "check": p.check, "metric": p.metric, "value": p.value, "threshold": p.threshold,
                 "verdict": p.verdict} for row, r in zip(rows, runs, strict=True) for p in r["points"]])
        return len(runs)

    def monitoring_history(self, model: str) -> list[tuple[MonitoringRun, list[MonitoringResult]]]:
        with session_scope(self.url) as session:
            runs = session.scalars(select(MonitoringRun).where(MonitoringRun.model == model)
                                   .order_by(MonitoringRun.run_at, MonitoringRun.id)).all()
            out = []
            for run in runs:
                results = session.scalars(select(MonitoringResult).where(MonitoringResult.run_id == run.id)).all()
                out.append((run, list(results)))
            return out

    def recent_monitoring(self, model: str, limit: int = 10) -> list[MonitoringRun]:
        with session_scope(self.url) as session:
            runs = session.scalars(select(MonitoringRun).where(MonitoringRun.model == model)
                                   .order_by(MonitoringRun.run_at.desc(), MonitoringRun.id.desc()).limit(limit)).all()
            return list(reversed(runs))

    # --- retraining requests -----------------------------------------------------------------------------
    def claim_retrain(self, model: str, version: str, reason: str, cooldown_hours: float) -> datetime | None:
        """Ask for a retrain unless one was asked for within the cool-down. Returns None when this call claimed
        it, else when the earlier request was made.

        Insert first, then look: of the requests inside the cool-down the oldest wins, so two monitors racing
        on any database agree on one winner without locks."""
        now = utcnow()
        with session_scope(self.url) as session:
            mine = RetrainRequest(model=model, version=version, reason=reason, requested_at=now)
            session.add(mine)
            session.flush()
            mine_id = mine.id
        since = now - timedelta(hours=cooldown_hours)
        with session_scope(self.url) as session:
            first = session.execute(select(RetrainRequest.id, RetrainRequest.requested_at).where(
                RetrainRequest.model == model, RetrainRequest.requested_at >= since,
            ).order_by(RetrainRequest.requested_at, RetrainRequest.id).limit(1)).one()
            if first.id == mine_id:
                return None
            session.execute(delete(RetrainRequest).where(RetrainRequest.id == mine_id))
            return _aware(first.requested_at)

    # --- alerts ------------------------------------------------------------------------------------------
    def alert_state(self, model: str, check: str) -> tuple[bool, datetime | None]:
        """(firing, last time it was announced)."""
        with session_scope(self.url) as session:
            row = session.scalar(select(AlertState).where(AlertState.model == model, AlertState.check == check))
            return (False, None) if row is None else (row.firing, _aware(row.last_sent_at))

    def _ensure_alert_row(self, model: str, check: str) -> None:
        try:
            with session_scope(self.url) as session:
                if session.scalar(select(AlertState.id).where(AlertState.model == model,
                                                              AlertState.check == check)) is None:
                    session.add(AlertState(model=model, check=check, firing=False, since=utcnow()))
        except IntegrityError:
            pass  # created by a concurrent monitor

    def claim_alert(self, model: str, check: str, cooldown_hours: float) -> bool:
        """Atomically take the right to announce a breach: not firing yet, or last announced before the
        cool-down (then it is a reminder)."""
        self._ensure_alert_row(model, check)
        now = utcnow()
        cutoff = now - timedelta(hours=cooldown_hours)
        with session_scope(self.url) as session:
            return session.execute(update(AlertState).where(
                AlertState.model == model, AlertState.check == check,
                or_(AlertState.firing.is_(False), AlertState.last_sent_at.is_(None),
                    AlertState.last_sent_at < cutoff),
            ).values(firing=True, last_sent_at=now)).rowcount == 1

    def release_alert(self, model: str, check: str) -> None:
        """Delivery failed: stay firing but with no announcement on record, so the next run tries again."""
        with session_scope(self.url) as session:
            session.execute(update(AlertState).where(AlertState.model == model, AlertState.check == check)
                            .values(last_sent_at=None))

    def claim_recovery(self, model: str, check: str) -> bool:
        """Atomically take the right to announce that a firing check recovered (once)."""
        with session_scope(self.url) as session:
            return session.execute(update(AlertState).where(
                AlertState.model == model, AlertState.check == check, AlertState.firing.is_(True),
            ).values(firing=False, since=utcnow())).rowcount == 1

    def unclaim_recovery(self, model: str, check: str) -> None:
        with session_scope(self.url) as session:
            session.execute(update(AlertState).where(AlertState.model == model, AlertState.check == check)
                            .values(firing=True))

    def record_alert_delivery(self, *, model: str, version: str | None, check: str, kind: str, channel: str,
                              attempts: int, delivered: bool, error: str | None, message: dict[str, Any]) -> None:
        with session_scope(self.url) as session:
            session.add(AlertDelivery(model=model, version=version, check=check, kind=kind, channel=channel,
                                      attempted_at=utcnow(), attempts=attempts, delivered=delivered, error=error,
                                      message=message))

    def alert_deliveries(self, model: str) -> list[AlertDelivery]:
        with session_scope(self.url) as session:
            return list(session.scalars(select(AlertDelivery).where(AlertDelivery.model == model)
                                        .order_by(AlertDelivery.id)))
