"""Reading and writing the governance store: the only module that issues its queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelops.errors import ApprovalClosedError, CatalogError, ModelOpsError, StoreIntegrityError
from modelops.store.audit_chain import (
    GENESIS, AuditEntry, AuditFact, ChainHead, ChainRow, ChainVerdict, normalise_evidence, record_hash, verify_chain,
)
from modelops.store.db import engine_for, session_scope
from modelops.store.schema import (
    AlertDelivery, AlertState, ApiToken, Approval, ApprovalRequest, ApprovalVote, AuditChainHead, AuditEvent,
    Deployment, GroundTruthBatch, Lineage, MonitoringResult, MonitoringRun, Person, PersonToken, PredictionBatch,
    RegistrationClaim, RetrainClaim, RetrainRequest, RoleGrant, VersionRecord,
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


# A state change written in the same transaction as its audit record. It returns evidence to add to the record,
# or None when there is nothing to change (then nothing at all is written).
Change = Callable[[Session], "dict[str, Any] | None"]


def chained(first: Change, then: Change) -> Change:
    """`first`, then `then` in the same transaction when `first` changed something (their evidence merged)."""
    def change(session: Session) -> dict[str, Any] | None:
        found = first(session)
        if found is None:
            return None
        return {**found, **(then(session) or {})}
    return change


@dataclass(frozen=True)
class MonitoringPoint:
    check: str
    metric: str
    value: float | None
    threshold: float | None
    verdict: str


@dataclass(frozen=True)
class GovernedVersion:
    """A version as the governance store knows it: what every gate decides from."""

    model: str
    version: str
    source: str
    fingerprint: str
    chain: str
    content_hash: str
    manifest: dict[str, str]
    registered_at: datetime
    registered_by: str
    security_status: str | None
    validation_status: str | None
    holdout_metrics: dict[str, float]
    validation_run_id: str | None
    retired_at: datetime | None
    retired_reason: str | None
    train_start: datetime | None = None
    train_end: datetime | None = None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class ServingRow:
    """An active deployment and the gate facts that decide whether it may serve."""

    model: str
    role: str
    version: str
    strategy: str
    approval: str | None
    security: str | None
    retired: bool
    content_hash: str | None


def _governed(row: VersionRecord, lineage: Lineage | None) -> GovernedVersion:
    return GovernedVersion(
        model=row.model, version=row.version, source=row.source, fingerprint=row.fingerprint, chain=row.chain,
        content_hash=row.content_hash, manifest=dict(row.manifest), registered_at=_aware(row.registered_at),
        registered_by=row.registered_by, security_status=row.security_status,
        validation_status=row.validation_status, holdout_metrics=dict(row.holdout_metrics or {}),
        validation_run_id=row.validation_run_id, retired_at=_aware(row.retired_at), retired_reason=row.retired_reason,
        train_start=_aware(lineage.train_start) if lineage else None,
        train_end=_aware(lineage.train_end) if lineage else None)


def _chain_row(r: AuditEvent) -> ChainRow:
    return ChainRow(id=r.id, seq=r.seq, prev_hash=r.prev_hash, record_hash=r.record_hash, at=_aware(r.at), actor=r.actor,
                    stage=r.stage, action=r.action, model=r.model, version=r.version, outcome=r.outcome,
                    evidence=r.evidence, event=r.event, flow_run_id=r.flow_run_id)


_GATE_STAGES = ("register", "validate", "approve", "deploy", "retire")


def _newest(audits: list[AuditEvent], version: str, stage: str, *actions: str) -> AuditEvent | None:
    return next((a for a in reversed(audits) if a.version == version and a.stage == stage and a.action in actions),
                None)


def _version_problems(row: VersionRecord, audits: list[AuditEvent]) -> list[str]:
    where, problems = f"{row.model} v{row.version}", []
    registered = _newest(audits, row.version, "register", "train-and-register", "register-external")
    if registered is None or registered.evidence.get("content_hash") != row.content_hash:
        problems.append(f"{where}: its version record (content hash {row.content_hash[:12]}..) has no matching "
                        "register record")
    if row.validation_status is not None:
        validated = _newest(audits, row.version, "validate", "run-gates")
        if validated is None or validated.outcome != row.validation_status or \
                validated.evidence.get("validation_run_id") != row.validation_run_id:
            problems.append(f"{where}: its validation verdict {row.validation_status!r} has no matching validate "
                            "record")
    if row.retired_at is not None and _newest(audits, row.version, "retire", "retire-version") is None:
        problems.append(f"{where}: its retirement has no retire record")
    return problems


# Audit actions that set a version's approval row: the policy's verdict, a revocation, people's decision, a timeout.
DECISION_ACTIONS = ("apply-policy", "revoke-approval", "human-decision", "approval-timeout")


def _approval_problems(row: Approval, audits: list[AuditEvent]) -> list[str]:
    decided = _newest(audits, row.version, "approve", *DECISION_ACTIONS)
    if decided is None or decided.outcome != row.status:
        return [f"{row.model} v{row.version}: its approval {row.status!r} has no matching approve record"]
    return []


def _deployment_problems(row: Deployment, audits: list[AuditEvent]) -> list[str]:
    if any(a.stage == "deploy" and a.version == row.version and a.evidence.get("deployment_id") == row.id
           for a in audits):
        return []
    return [f"{row.model} v{row.version}: its deployment as {row.role} (id {row.id}) has no deploy record"]


@dataclass(frozen=True)
class ApiTokenInfo:
    """An API token as `modelops tokens list` shows it: everything but its hash."""

    id: str
    client: str
    models: tuple[str, ...]  # model names, or ("*",) for every model
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class TokenCredential:
    """What the gateway checks a presented token against; revoked tokens too, so it can tell a client whose token
    was revoked from one presenting a token that never existed."""

    id: str
    client: str
    token_hash: str
    models: tuple[str, ...]
    revoked: bool


def _token_info(row: ApiToken) -> ApiTokenInfo:
    return ApiTokenInfo(id=row.id, client=row.client, models=tuple(row.models), created_at=_aware(row.created_at),
                        created_by=row.created_by, revoked_at=_aware(row.revoked_at), revoked_by=row.revoked_by)


ACCESS_STAGE = "access"  # the audit stage of API token changes and of people, roles and approver tokens
PEOPLE_SCOPE = "*"  # the audit trail ("model") that people, role and approver token records belong to


@dataclass(frozen=True)
class PersonInfo:
    name: str
    roles: tuple[str, ...]  # roles held now, backed by the audit trail
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class PersonCredential:
    """An approver token as its hash-chained issue record states it (the table row must agree)."""

    token_id: str
    person: str
    public_key: str | None  # None: issued before approvals were signed, good for nothing now
    expires_at: datetime
    revoked: bool  # replaced by a newer token of the person


@dataclass(frozen=True)
class ApprovalRequestInfo:
    model: str
    version: str
    required: int
    roles: tuple[str, ...]
    opened_at: datetime
    deadline: datetime
    flow_run_id: str | None
    closed_at: datetime | None
    outcome: str | None

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Vote:
    person: str | None
    decision: str
    comment: str
    accepted: bool
    refusal: str | None
    via: str
    flow_run_id: str | None
    input_key: str | None
    at: datetime


def _require_open(row: ApprovalRequest, before_deadline: bool) -> None:
    """ApprovalClosedError unless the request is open and, for people's votes, before its deadline."""
    where = f"the approval request of {row.model} v{row.version}"
    if row.closed_at is not None:
        closed = _aware(row.closed_at)
        raise ApprovalClosedError(f"{where} was decided already ({row.outcome}, {closed:%Y-%m-%d %H:%M} UTC)",
                                  "nothing to decide; a new version asks anew")
    if before_deadline and _aware(row.deadline) <= datetime.now(timezone.utc):
        raise ApprovalClosedError(f"{where} passed its deadline ({_aware(row.deadline):%Y-%m-%d %H:%M} UTC)",
                                  "it is rejected at the deadline; register and validate a new version to ask anew")


def _request_info(row: ApprovalRequest) -> ApprovalRequestInfo:
    return ApprovalRequestInfo(model=row.model, version=row.version, required=row.required, roles=tuple(row.roles),
                               opened_at=_aware(row.opened_at), deadline=_aware(row.deadline),
                               flow_run_id=row.flow_run_id, closed_at=_aware(row.closed_at), outcome=row.outcome)


# Values bound in one IN (...): far below every database's limit on parameters (SQLite's is 32,766).
IN_CHUNK = 500


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def _plain(table: Any) -> Any:
    """A select of every column of the table as plain rows: reading thousands of rows for a report, building ORM
    objects would cost more than the query."""
    return select(*table.__table__.columns)


def _of_models(session: Session, query: Any, column: Any, models: Sequence[str]) -> list[Any]:
    """`query`'s rows for these models, a chunk of models per query (status reads a thousand models at once). Run
    on the session's connection, as SQL: the ORM's row loading would double the time of a thousand models' rows."""
    connection = session.connection()
    return [row for part in _chunks(sorted(set(models))) for row in connection.execute(query.where(column.in_(part)))]


def _intact(session: Session, rows: Sequence[AuditEvent]) -> list[AuditEvent]:
    """The records that back state rows and are intact links of the chain: each one's own hash computes, its
    predecessor's hash is its prev_hash and its successor's prev_hash is its hash. A record edited in place (its
    evidence rewritten to name another person or key) fails this without a full verification of the chain. The
    neighbours of all `rows` are read in one query."""
    if not rows:
        return []
    wanted = sorted({row.seq + step for row in rows for step in (-1, 1)})
    neighbours = {seq: (prev, own) for part in _chunks(wanted) for seq, prev, own in session.execute(
        select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.record_hash).where(AuditEvent.seq.in_(part)))}
    head = session.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == 1))

    def linked(row: AuditEvent) -> bool:
        before = neighbours.get(row.seq - 1, (None, None))[1] if row.seq > 1 else GENESIS
        # Only the newest record has no successor: a missing one elsewhere was deleted.
        after = neighbours.get(row.seq + 1, (None, None))[0] if row.seq != head else row.record_hash
        return (_chain_row(row).computed_hash() == row.record_hash and before == row.prev_hash
                and after == row.record_hash)
    return [row for row in rows if linked(row)]


def _access_records(session: Session, *actions: str) -> list[AuditEvent]:
    """The people/role/token records of these actions, oldest first. Fails closed: a broken one (which could be a
    revocation made unreadable to bring a grant or token back) stops every access check until it is repaired."""
    rows = session.scalars(select(AuditEvent).where(
        AuditEvent.stage == ACCESS_STAGE, AuditEvent.model == PEOPLE_SCOPE, AuditEvent.action.in_(actions))
        .order_by(AuditEvent.seq)).all()
    intact = _intact(session, rows)
    if len(intact) != len(rows):
        broken = next(r for r in rows if r not in intact)
        raise StoreIntegrityError(f"the access record seq {broken.seq} ({broken.action}) is not an intact link of "
                                  "the audit chain: people, roles and tokens cannot be trusted",
                                  "run `modelops audit verify`, restore the governance store from a backup")
    return intact


def _backed_grants(grants: Sequence[RoleGrant], access: Sequence[AuditEvent]) -> list[RoleGrant]:
    """The grants the access records account for, person and role included: a grant written into the table
    around the platform (a person granting themselves `approver` in the database, or turning a recorded grant of
    another role into one) is never honoured."""
    def backs(record: AuditEvent, grant: RoleGrant) -> bool:
        ev = record.evidence
        if record.action == "grant-role":
            return ev.get("grant_id") == grant.id and ev.get("person") == grant.person and ev.get("role") == grant.role
        return grant.id in ev.get("grant_ids", []) and ev.get("person") == grant.person and grant.role in ev.get(
            "roles", [])
    revoked = {a.evidence.get("grant_id") for a in access if a.action == "revoke-role"}
    return [g for g in grants if any(backs(a, g) for a in access if a.action in ("grant-role", "add-person"))
            and (g.revoked_at is None) == (g.id not in revoked)]


def _token_problems(row: ApiToken, audits: Sequence[AuditEvent]) -> list[str]:
    """A token row the access records do not account for: created, widened or re-opened around the platform (a
    swapped token_hash is not seen: the records must not carry anything derived from the secret)."""
    where = f"API token {row.id} (client {row.client}, models {', '.join(row.models)})"
    mine = [a for a in audits if a.evidence.get("token_id") == row.id]
    if not any(a.action == "create-token" and a.evidence.get("client") == row.client
               and a.evidence.get("models") == list(row.models) for a in mine):
        return [f"{where}: no create-token record has this client and these models"]
    revoked = any(a.action == "revoke-token" for a in mine)
    if row.revoked_at is not None and not revoked:
        return [f"{where}: its revocation has no revoke-token record"]
    if row.revoked_at is None and revoked:
        return [f"{where}: it was revoked, yet it is live again"]
    return []


class GovernanceStore:
    def __init__(self, url: str) -> None:
        self.url = url

    def open(self) -> None:
        """Connect and migrate to the newest schema now rather than on some later first call."""
        engine_for(self.url)

    # --- audit trail -------------------------------------------------------------------------------------
    def record(self, fact: AuditFact, change: Change | None = None) -> AuditEntry | None:
        """Apply `change` (if any) and append the audit record of it in one transaction: a state change never
        lands without its record, nor a record without its change. Returns the entry, or None when `change`
        found nothing to change. Every call that changes something is recorded: idempotency comes from the
        state a change inspects, never from matching audit content (which anyone able to write rows could
        pre-write to suppress a record)."""
        entries = self.record_all([fact], change)
        return entries[0] if entries else None

    def record_all(self, facts: Sequence[AuditFact], change: Change | None = None) -> list[AuditEntry]:
        """`record` for a change that belongs in several models' trails (an API token scoped to three models):
        the change and all its records in one transaction, consecutive links of the chain. Empty when `change`
        found nothing to change."""
        if not facts:
            raise ValueError("record_all needs at least one fact")
        with session_scope(self.url) as session:
            # The head is taken first: this write is what makes concurrent appenders queue, each seeing the
            # head its predecessor left, so the chain never forks.
            head = session.execute(update(AuditChainHead).where(AuditChainHead.id == 1)
                                   .values(seq=AuditChainHead.seq + len(facts))
                                   .returning(AuditChainHead.seq, AuditChainHead.head_hash)).one_or_none()
            if head is None:
                raise StoreIntegrityError("the audit chain's head row is missing from the governance store",
                                          "the store was tampered with: run `modelops audit verify` and restore it "
                                          "from a backup")
            extra = change(session) if change is not None else {}
            if extra is None:
                session.rollback()
                return []
            at, prev, entries = utcnow(), head.head_hash, []
            for seq, fact in enumerate(facts, start=head.seq - len(facts) + 1):
                evidence = normalise_evidence({**fact.evidence, **extra})
                digest = record_hash(seq=seq, prev_hash=prev, at=at, actor=fact.actor, stage=fact.stage,
                                     action=fact.action, model=fact.model, version=fact.version,
                                     outcome=fact.outcome, evidence=evidence, event=fact.event,
                                     flow_run_id=fact.flow_run_id)
                # Added in chain order: the unit of work inserts them in this order, so ids follow seqs.
                session.add(AuditEvent(at=at, actor=fact.actor, stage=fact.stage, action=fact.action,
                                       model=fact.model, version=fact.version, outcome=fact.outcome,
                                       evidence=evidence, event=fact.event, flow_run_id=fact.flow_run_id, seq=seq,
                                       prev_hash=prev, record_hash=digest))
                entries.append(AuditEntry(**{**vars(fact), "evidence": evidence}, at=at, seq=seq,
                                          record_hash=digest))
                prev = digest
            session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(head_hash=prev))
        return entries

    def record_audit(self, *, actor: str, stage: str, action: str, model: str, version: str | None, outcome: str,
                     evidence: dict[str, Any], event: str | None = None, flow_run_id: str | None = None) -> AuditEntry:
        """Append an audit record of something that changes no governed state (a scoring, a monitoring pass)."""
        entry = self.record(AuditFact(actor=actor, stage=stage, action=action, model=model, version=version,
                                      outcome=outcome, evidence=evidence, event=event, flow_run_id=flow_run_id))
        assert entry is not None  # no change to find empty
        return entry

    def audit_trail(self, model: str | None = None) -> list[AuditEntry]:
        with session_scope(self.url) as session:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            if model:
                query = query.where(AuditEvent.model == model)
            return [_chain_row(r) for r in session.scalars(query)]

    def has_record(self, model: str, version: str, stage: str, action: str, outcome: str) -> bool:
        with session_scope(self.url) as session:
            return session.scalar(select(AuditEvent.id).where(
                AuditEvent.model == model, AuditEvent.version == version, AuditEvent.stage == stage,
                AuditEvent.action == action, AuditEvent.outcome == outcome).limit(1)) is not None

    def newest_record(self, model: str, version: str, stage: str, action: str) -> ChainRow | None:
        """The latest audit record of an action on a version: the evidence a gate left (e.g. validation's ONNX
        conversion), tamper-evident through the audit chain."""
        with session_scope(self.url) as session:
            row = session.scalar(select(AuditEvent).where(
                AuditEvent.model == model, AuditEvent.version == version, AuditEvent.stage == stage,
                AuditEvent.action == action).order_by(AuditEvent.seq.desc()).limit(1))
            return None if row is None else _chain_row(row)

    def audit_chain(self) -> list[ChainRow]:
        """Every audit record in storage order, for verification."""
        with session_scope(self.url) as session:
            return [_chain_row(r) for r in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]

    def verify_audit(self, heads: list[ChainHead]) -> ChainVerdict:
        return verify_chain(self.audit_chain(), heads)

    # --- versions: the gates' system of record -----------------------------------------------------------
    def governed_version(self, model: str, version: str) -> GovernedVersion | None:
        with session_scope(self.url) as session:
            row = session.scalar(select(VersionRecord).where(VersionRecord.model == model,
                                                             VersionRecord.version == version))
            if row is None:
                return None
            lineage = session.scalar(select(Lineage).where(Lineage.model == model, Lineage.version == version))
            return _governed(row, lineage)

    def governed_versions(self, model: str) -> list[GovernedVersion]:
        return self.governed_versions_of([model]).get(model, [])

    def governed_models(self) -> list[str]:
        """Every model with a governed version."""
        with session_scope(self.url) as session:
            return sorted(session.scalars(select(VersionRecord.model).distinct()))

    def governed_versions_of(self, models: Sequence[str]) -> dict[str, list[GovernedVersion]]:
        """{model: its governed versions, oldest first} for many models in two queries per chunk of models."""
        with session_scope(self.url) as session:
            lineage = {(r.model, r.version): r for r in _of_models(session, _plain(Lineage), Lineage.model, models)}
            rows = _of_models(session, _plain(VersionRecord), VersionRecord.model, models)
            found: dict[str, list[GovernedVersion]] = {}
            for row in sorted(rows, key=lambda r: (r.model, int(r.version))):
                found.setdefault(row.model, []).append(_governed(row, lineage.get((row.model, row.version))))
            return found

    def live_version_with_fingerprint(self, model: str, fingerprint: str) -> GovernedVersion | None:
        """A version built from exactly these inputs that is not retired, if one exists."""
        for governed in self.governed_versions(model):
            if governed.fingerprint == fingerprint and not governed.retired:
                return governed
        return None

    def add_version(self, *, model: str, version: str, source: str, fingerprint: str, chain: str,
                    content_hash: str, manifest: dict[str, str], registered_by: str) -> Change:
        def change(session: Session) -> dict[str, Any] | None:
            if session.scalar(select(VersionRecord.id).where(VersionRecord.model == model,
                                                             VersionRecord.version == version)) is not None:
                return None
            session.add(VersionRecord(model=model, version=version, source=source, fingerprint=fingerprint,
                                      chain=chain, content_hash=content_hash, manifest=manifest,
                                      registered_at=utcnow(), registered_by=registered_by, holdout_metrics={}))
            return {"content_hash": content_hash, "files": len(manifest)}
        return change

    def set_validation(self, model: str, version: str, *, security: str, status: str, metrics: dict[str, float],
                       run_id: str) -> Change:
        def change(session: Session) -> dict[str, Any] | None:
            row = self._version_row(session, model, version)
            row.security_status, row.validation_status = security, status
            row.holdout_metrics, row.validation_run_id, row.validated_at = dict(metrics), run_id, utcnow()
            return {}
        return change

    def retire_version(self, model: str, version: str, reason: str) -> Change:
        """Mark retired, end its deployments and release its registration claim (the same inputs may be
        registered again as a new version)."""
        def change(session: Session) -> dict[str, Any] | None:
            row = self._version_row(session, model, version)
            if row.retired_at is not None:
                return None
            now = utcnow()
            row.retired_at, row.retired_reason = now, reason
            active = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.version == version, Deployment.ended_at.is_(None))).all()
            for deployment in active:
                deployment.ended_at, deployment.ended_reason = now, f"retired: {reason}"
            session.execute(delete(RegistrationClaim).where(RegistrationClaim.model == model,
                                                            RegistrationClaim.fingerprint == row.fingerprint))
            return {"deployments_ended": len(active)}
        return change

    @staticmethod
    def _version_row(session: Session, model: str, version: str) -> VersionRecord:
        row = session.scalar(select(VersionRecord).where(VersionRecord.model == model,
                                                         VersionRecord.version == version))
        if row is None:
            raise CatalogError(f"{model} v{version} has no governance record",
                               "only versions registered through the platform (`modelops register`) are governed")
        return row

    # --- state rows backed by the audit chain ----------------------------------------------------------
    def unbacked_state(self, model: str, version: str | None = None) -> list[str]:
        """Gate rows (version record, validation verdict, approval, serving deployments, retirement) that no audit
        record accounts for: rows written into the database directly, around the platform. The rows are read
        before the records, so a change committed in between (row and record land together) is never misjudged.
        Asked about the whole model (no version), the API tokens that may call it are checked too: a token
        scoped to every model is checked under each model."""
        with session_scope(self.url) as session:
            versions = session.scalars(select(VersionRecord).where(
                VersionRecord.model == model, *([VersionRecord.version == version] if version else []))).all()
            approvals = session.scalars(select(Approval).where(
                Approval.model == model, *([Approval.version == version] if version else []))).all()
            deployments = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.ended_at.is_(None),
                *([Deployment.version == version] if version else []))).all()
            # Tokens are few: filtering their JSON scope here is simpler than a JSON query per dialect.
            tokens = [] if version else [row for row in session.scalars(select(ApiToken).order_by(ApiToken.id))
                                         if model in row.models or "*" in row.models]
            # Only the stages that write gate rows, and only the version asked about: scoring and monitoring
            # records grow with every run and would make each gate slower than the last.
            audits = session.scalars(select(AuditEvent).where(
                AuditEvent.model == model, AuditEvent.stage.in_(_GATE_STAGES),
                *([AuditEvent.version == version] if version else [])).order_by(AuditEvent.seq)).all()
            access = session.scalars(select(AuditEvent).where(
                AuditEvent.stage == ACCESS_STAGE, AuditEvent.model.in_([model, "*"]))).all() if tokens else []
        return [*(p for row in versions for p in _version_problems(row, audits)),
                *(p for row in approvals for p in _approval_problems(row, audits)),
                *(p for row in deployments for p in _deployment_problems(row, audits)),
                *(p for row in tokens for p in _token_problems(row, access))]

    # --- registration claims -----------------------------------------------------------------------------
    def claim_registration(self, model: str, fingerprint: str, claimed_by: str) -> bool:
        """Take the right to register these inputs; False when someone holds it already."""
        try:
            with session_scope(self.url) as session:
                session.add(RegistrationClaim(model=model, fingerprint=fingerprint, claimed_by=claimed_by,
                                              claimed_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def registration_claimant(self, model: str, fingerprint: str) -> str | None:
        with session_scope(self.url) as session:
            return session.scalar(select(RegistrationClaim.claimed_by).where(
                RegistrationClaim.model == model, RegistrationClaim.fingerprint == fingerprint))

    def release_registration(self, model: str, fingerprint: str) -> None:
        with session_scope(self.url) as session:
            session.execute(delete(RegistrationClaim).where(RegistrationClaim.model == model,
                                                            RegistrationClaim.fingerprint == fingerprint))

    # --- approvals ---------------------------------------------------------------------------------------
    def set_approval(self, model: str, version: str, status: str, reasons: list[str], decided_by: str) -> Change:
        """The decision, unless the same decision with the same reasons stands already."""
        def change(session: Session) -> dict[str, Any] | None:
            row = session.scalar(select(Approval).where(Approval.model == model, Approval.version == version))
            if row is not None and row.status == status and list(row.reasons) == list(reasons):
                return None
            if row is None:
                row = Approval(model=model, version=version)
                session.add(row)
            row.status, row.reasons, row.decided_by, row.decided_at = status, reasons, decided_by, utcnow()
            return {}
        return change

    def approval_status(self, model: str, version: str) -> str | None:
        with session_scope(self.url) as session:
            return session.scalar(select(Approval.status).where(Approval.model == model, Approval.version == version))

    def approval_statuses(self, models: Sequence[str]) -> dict[tuple[str, str], str]:
        """{(model, version): approval status} of every decided version of these models."""
        with session_scope(self.url) as session:
            return {(model, version): status for model, version, status in _of_models(
                session, select(Approval.model, Approval.version, Approval.status), Approval.model, models)}

    # --- deployments -------------------------------------------------------------------------------------
    def start_deployment(self, model: str, version: str, role: str, strategy: str, deployed_by: str) -> Change:
        """The version serves as role, ending whoever held the role; nothing when it holds the role already."""
        def change(session: Session) -> dict[str, Any] | None:
            active = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.role == role, Deployment.ended_at.is_(None))).all()
            if any(row.version == version for row in active):
                return None
            now = utcnow()
            for row in active:
                row.ended_at, row.ended_reason = now, f"replaced by version {version}"
            deployment = Deployment(model=model, version=version, role=role, strategy=strategy,
                                    deployed_by=deployed_by, deployed_at=now)
            session.add(deployment)
            session.flush()
            return {"deployment_id": deployment.id, "replaced": [row.version for row in active]}
        return change

    def end_role(self, model: str, role: str, reason: str) -> Change:
        """Whoever serves as role stops (a challenger promoted to champion no longer serves as challenger)."""
        def change(session: Session) -> dict[str, Any] | None:
            active = session.scalars(select(Deployment).where(
                Deployment.model == model, Deployment.role == role, Deployment.ended_at.is_(None))).all()
            if not active:
                return None
            for row in active:
                row.ended_at, row.ended_reason = utcnow(), reason
            return {"ended": [row.version for row in active]}
        return change

    def deployments(self, model: str, version: str | None = None) -> list[Deployment]:
        """Every deployment of the model (or of one version), ended ones too, oldest first: its serving history."""
        with session_scope(self.url) as session:
            rows = session.scalars(select(Deployment).where(
                Deployment.model == model, *([Deployment.version == version] if version else []))
                .order_by(Deployment.deployed_at, Deployment.id)).all()
            session.expunge_all()  # detached: normalising datetimes below must not turn a read into an UPDATE
            for row in rows:
                row.deployed_at, row.ended_at = _aware(row.deployed_at), _aware(row.ended_at)
            return list(rows)

    def serving_version(self, model: str, role: str) -> str | None:
        """The version the store says serves as role (champion, challenger): what serves is decided here."""
        with session_scope(self.url) as session:
            return session.scalar(select(Deployment.version).where(
                Deployment.model == model, Deployment.role == role, Deployment.ended_at.is_(None),
            ).order_by(Deployment.deployed_at.desc()).limit(1))

    def serving_versions(self, models: Sequence[str]) -> dict[tuple[str, str], str]:
        """{(model, role): version} of what serves, for many models at once (serving_version's answer for each)."""
        with session_scope(self.url) as session:
            rows = _of_models(session, select(Deployment.model, Deployment.role, Deployment.version)
                              .where(Deployment.ended_at.is_(None))
                              .order_by(Deployment.deployed_at, Deployment.id), Deployment.model, models)
        # the newest deployment of a role wins, as in serving_version
        return {(row.model, row.role): row.version for row in rows}

    def serving_snapshot(self) -> list[ServingRow]:
        """Every active deployment with what decides whether it may serve (approval, security scan, retirement), in
        one query: the online gateway asks this every fraction of a second, for every model at once."""
        with session_scope(self.url) as session:
            rows = session.execute(
                select(Deployment.model, Deployment.role, Deployment.version, Deployment.strategy, Approval.status,
                       VersionRecord.security_status, VersionRecord.retired_at, VersionRecord.content_hash)
                .join(VersionRecord, (VersionRecord.model == Deployment.model)
                      & (VersionRecord.version == Deployment.version), isouter=True)
                .join(Approval, (Approval.model == Deployment.model) & (Approval.version == Deployment.version),
                      isouter=True)
                .where(Deployment.ended_at.is_(None))
                .order_by(Deployment.deployed_at)).all()
        # the newest deployment of a role wins, as in serving_version
        newest = {(r.model, r.role): r for r in rows}
        return [ServingRow(model=r.model, role=r.role, version=r.version, strategy=r.strategy, approval=r.status,
                           security=r.security_status, retired=r.retired_at is not None, content_hash=r.content_hash)
                for r in newest.values()]

    def first_served_at(self, model: str, version: str) -> datetime | None:
        """When the version first served as champion, by a deployment an intact deploy record backs: a champion
        row written around the platform (say, an ended one, to pass a promotion off as a rollback) counts for
        nothing."""
        return self.first_served_of([model], version).get((model, version))

    def first_served_of(self, models: Sequence[str], version: str | None = None) -> dict[tuple[str, str], datetime]:
        """{(model, version): first_served_at} of every version of these models (or of one version) that served as
        champion, in three queries per chunk of models whatever the number of versions."""
        only = [] if version is None else [Deployment.version == version]
        with session_scope(self.url) as session:
            rows = _of_models(session, _plain(Deployment).where(Deployment.role == "champion", *only)
                              .order_by(Deployment.deployed_at), Deployment.model, models)
            if not rows:
                return {}
            records = [r for r in _of_models(session, _plain(AuditEvent).where(
                AuditEvent.stage == "deploy", AuditEvent.action == "serve-as-champion",
                *([] if version is None else [AuditEvent.version == version])), AuditEvent.model, models)]
            backed = {(r.model, r.version, r.evidence.get("deployment_id")) for r in _intact(session, records)}
        served: dict[tuple[str, str], datetime] = {}
        for row in sorted(rows, key=lambda r: _aware(r.deployed_at)):
            if (row.model, row.version, row.id) in backed:
                served.setdefault((row.model, row.version), _aware(row.deployed_at))
        return served

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

    def prediction_models(self) -> list[str]:
        """The models that have logged predictions."""
        with session_scope(self.url) as session:
            return sorted(session.scalars(select(PredictionBatch.model).distinct()))

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
        if not runs:
            return 0  # a sweep that judged no model
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

    def monitoring_history(self, model: str, limit: int | None = None
                           ) -> list[tuple[MonitoringRun, list[MonitoringResult]]]:
        """The model's monitoring runs with their results, oldest first: all of them, or the newest `limit`. Two
        queries whatever the number of runs (each monitor run draws this history)."""
        newest_first = (select(MonitoringRun.id).where(MonitoringRun.model == model)
                        .order_by(MonitoringRun.run_at.desc(), MonitoringRun.id.desc()).limit(limit))
        with session_scope(self.url) as session:
            runs = session.scalars(select(MonitoringRun).where(MonitoringRun.id.in_(newest_first.scalar_subquery()))
                                   .order_by(MonitoringRun.run_at, MonitoringRun.id)).all()
            results: dict[int, list[MonitoringResult]] = {run.id: [] for run in runs}
            for result in session.scalars(select(MonitoringResult).where(
                    MonitoringResult.run_id.in_(newest_first.scalar_subquery())).order_by(MonitoringResult.id)):
                results[result.run_id].append(result)
            return [(run, results[run.id]) for run in runs]

    def newest_monitoring(self, models: Sequence[str]
                          ) -> dict[tuple[str, str], tuple[MonitoringRun, list[MonitoringResult]]]:
        """{(model, kind): (its newest run of that kind, the run's results)} for many models, in two queries per
        chunk of models: what monitoring_history's last entries of each kind say, without reading the history."""
        newest = (select(MonitoringRun.id, func.row_number().over(
            partition_by=(MonitoringRun.model, MonitoringRun.kind),
            order_by=(MonitoringRun.run_at.desc(), MonitoringRun.id.desc())).label("rank")))
        found: dict[tuple[str, str], tuple[MonitoringRun, list[MonitoringResult]]] = {}
        with session_scope(self.url) as session:
            for part in _chunks(sorted(set(models))):
                ranked = newest.where(MonitoringRun.model.in_(part)).subquery()
                ids = select(ranked.c.id).where(ranked.c.rank == 1)
                runs = {run.id: run for run in session.scalars(select(MonitoringRun).where(MonitoringRun.id.in_(ids)))}
                results: dict[int, list[MonitoringResult]] = {run_id: [] for run_id in runs}
                for result in session.scalars(select(MonitoringResult).where(MonitoringResult.run_id.in_(ids))
                                              .order_by(MonitoringResult.id)):
                    results[result.run_id].append(result)
                found |= {(run.model, run.kind): (run, results[run.id]) for run in runs.values()}
        return found

    def recent_monitoring(self, model: str, limit: int = 10) -> list[MonitoringRun]:
        with session_scope(self.url) as session:
            runs = session.scalars(select(MonitoringRun).where(MonitoringRun.model == model)
                                   .order_by(MonitoringRun.run_at.desc(), MonitoringRun.id.desc()).limit(limit)).all()
            return list(reversed(runs))

    # --- retraining requests -----------------------------------------------------------------------------
    def claim_retrain(self, model: str, version: str, reason: str, cooldown_hours: float) -> datetime | None:
        """Ask for a retrain unless one was asked for within the cool-down. Returns None when this call claimed
        it, else when the earlier request was made.

        One conditional UPDATE of the model's claim row decides: the database runs racing updates of one row one
        after the other and re-checks the condition for each, so exactly one of racing monitors wins, on SQLite
        and PostgreSQL alike. (Comparing timestamps or ids of inserted rows does not: a later commit can carry
        an earlier value.)"""
        self._ensure_claim_row(RetrainClaim(model=model))
        now = utcnow()
        cutoff = now - timedelta(hours=cooldown_hours)
        with session_scope(self.url) as session:
            won = session.execute(update(RetrainClaim).where(
                RetrainClaim.model == model,
                or_(RetrainClaim.last_requested_at.is_(None), RetrainClaim.last_requested_at < cutoff),
            ).values(last_requested_at=now)).rowcount == 1
            if won:
                session.add(RetrainRequest(model=model, version=version, reason=reason, requested_at=now))
                return None
            return _aware(session.scalar(select(RetrainClaim.last_requested_at).where(RetrainClaim.model == model)))

    def _ensure_claim_row(self, row: RetrainClaim | AlertState) -> None:
        """Create the row a claim updates, unless it exists (or a concurrent process just created it)."""
        try:
            with session_scope(self.url) as session:
                session.add(row)
        except IntegrityError:
            pass

    # --- alerts ------------------------------------------------------------------------------------------
    def alert_state(self, model: str, check: str) -> tuple[bool, datetime | None]:
        """(firing, last time it was announced)."""
        with session_scope(self.url) as session:
            row = session.scalar(select(AlertState).where(AlertState.model == model, AlertState.check == check))
            return (False, None) if row is None else (row.firing, _aware(row.last_sent_at))

    def claim_alert(self, model: str, check: str, cooldown_hours: float) -> bool:
        """Atomically take the right to announce a breach: not firing yet, or last announced before the
        cool-down (then it is a reminder)."""
        self._ensure_claim_row(AlertState(model=model, check=check, firing=False, since=utcnow()))
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

    # --- people, roles and approver tokens ------------------------------------------------------------------
    def people(self) -> list[PersonInfo]:
        """Everyone, by name, with the roles they hold now."""
        with session_scope(self.url) as session:
            people = session.scalars(select(Person).order_by(Person.name)).all()
            grants = session.scalars(select(RoleGrant).where(RoleGrant.revoked_at.is_(None))).all()
            access = _access_records(session, "add-person", "grant-role", "revoke-role") if grants else []
            backed = _backed_grants(grants, access)
            return [PersonInfo(name=p.name, roles=tuple(sorted({g.role for g in backed if g.person == p.name})),
                               created_at=_aware(p.created_at), created_by=p.created_by) for p in people]

    def person(self, name: str) -> PersonInfo | None:
        return next((p for p in self.people() if p.name == name), None)

    def has_people(self) -> bool:
        """Whether access is checked: a person row, or a record that one was added. Deleting the people rows
        makes nobody a person (every check refuses), it never switches the checks off."""
        with session_scope(self.url) as session:
            return session.scalar(select(Person.name).limit(1)) is not None or session.scalar(
                select(AuditEvent.id).where(AuditEvent.stage == ACCESS_STAGE, AuditEvent.model == PEOPLE_SCOPE,
                                            AuditEvent.action == "add-person").limit(1)) is not None

    def add_person(self, name: str, created_by: str, first_roles: Sequence[str] = ()) -> Change:
        """A new person (nothing when the name exists), holding `first_roles`."""
        def change(session: Session) -> dict[str, Any] | None:
            if session.get(Person, name) is not None:
                return None
            session.add(Person(name=name, created_at=utcnow(), created_by=created_by))
            session.flush()
            grants = [RoleGrant(person=name, role=role, granted_at=utcnow(), granted_by=created_by)
                      for role in first_roles]
            session.add_all(grants)
            session.flush()
            return {"grant_ids": [g.id for g in grants]}
        return change

    def grant_role(self, name: str, role: str, granted_by: str) -> Change:
        """The person holds `role` from now (nothing when they hold it already)."""
        def change(session: Session) -> dict[str, Any] | None:
            if session.get(Person, name) is None:
                raise ModelOpsError(f"no person is named {name!r}", f"add them first: `modelops people add {name}`")
            if session.scalar(select(RoleGrant.id).where(RoleGrant.person == name, RoleGrant.role == role,
                                                         RoleGrant.revoked_at.is_(None))) is not None:
                return None
            grant = RoleGrant(person=name, role=role, granted_at=utcnow(), granted_by=granted_by)
            session.add(grant)
            session.flush()
            return {"grant_id": grant.id}
        return change

    def revoke_role(self, name: str, role: str, revoked_by: str) -> Change:
        def change(session: Session) -> dict[str, Any] | None:
            grant = session.scalar(select(RoleGrant).where(RoleGrant.person == name, RoleGrant.role == role,
                                                           RoleGrant.revoked_at.is_(None)))
            if grant is None:
                return None
            grant.revoked_at, grant.revoked_by = utcnow(), revoked_by
            return {"grant_id": grant.id}
        return change

    def add_person_token(self, *, token_id: str, person: str, public_key: str, expires_at: datetime) -> Change:
        """The person's new approver token (its public key); their older live tokens stop working."""
        def change(session: Session) -> dict[str, Any] | None:
            older = session.scalars(select(PersonToken).where(PersonToken.person == person,
                                                              PersonToken.revoked_at.is_(None))).all()
            for row in older:
                row.revoked_at = utcnow()
            session.add(PersonToken(id=token_id, person=person, public_key=public_key, created_at=utcnow(),
                                    expires_at=as_utc(expires_at)))
            session.flush()
            return {"revoked_token_ids": [row.id for row in older]}
        return change

    def person_credential(self, token_id: str) -> PersonCredential | None:
        """The token as its issue record states it, when the table row agrees with that record; None for a token
        no intact issue record backs (written or altered around the platform), which is never honoured."""
        with session_scope(self.url) as session:
            row = session.get(PersonToken, token_id)
            if row is None:
                return None
            issued = _access_records(session, "issue-approver-token")
            mine = [a for a in issued if a.evidence.get("approver_token_id") == token_id]
            if len(mine) != 1:  # an id is issued once: a second record of it is forged
                return None
            ev = mine[0].evidence
            try:
                expires = datetime.fromisoformat(str(ev.get("expires_at")))
            except ValueError:
                return None
            if ev.get("person") != row.person or ev.get("public_key") != row.public_key or \
                    _aware(row.expires_at) != expires:
                return None
            # Issuing a token replaces the person's older ones: a later issue record revokes this one, whatever
            # the row's revoked_at says.
            replaced = any(a.seq > mine[0].seq and a.evidence.get("person") == row.person for a in issued)
            return PersonCredential(token_id=row.id, person=row.person, public_key=row.public_key,
                                    expires_at=expires, revoked=replaced or row.revoked_at is not None)

    # --- approval requests and people's votes ----------------------------------------------------------------
    def open_approval_request(self, *, model: str, version: str, required: int, roles: Sequence[str],
                              deadline: datetime, flow_run_id: str | None) -> Change:
        """The version waits for people (nothing when it waits already for the same flow run, or was decided)."""
        def change(session: Session) -> dict[str, Any] | None:
            row = session.scalar(select(ApprovalRequest).where(ApprovalRequest.model == model,
                                                               ApprovalRequest.version == version))
            if row is not None and (row.closed_at is not None or row.flow_run_id == flow_run_id
                                    or flow_run_id is None):
                return None
            if row is None:
                row = ApprovalRequest(model=model, version=version, required=required, roles=list(roles),
                                      opened_at=utcnow(), deadline=as_utc(deadline))
                session.add(row)
            row.flow_run_id = flow_run_id  # a later run of approve takes over the waiting
            return {"required": row.required, "roles": list(row.roles), "deadline": as_utc(row.deadline).isoformat(),
                    "waiting_flow_run_id": flow_run_id}
        return change

    def approval_request(self, model: str, version: str) -> ApprovalRequestInfo | None:
        with session_scope(self.url) as session:
            row = session.scalar(select(ApprovalRequest).where(ApprovalRequest.model == model,
                                                               ApprovalRequest.version == version))
            return None if row is None else _request_info(row)

    def close_approval_request(self, model: str, version: str, outcome: str) -> Change:
        """Close the open request with `outcome`. ApprovalClosedError (nothing written) when it was closed already
        (the first decision stands), or when `outcome` is an approval and an accepted rejection is recorded (it
        landed after the votes were counted: count again). No deadline check here: votes are checked against the
        deadline when they are accepted, so votes in time decide even when counted after it."""
        def change(session: Session) -> dict[str, Any] | None:
            row = session.scalar(select(ApprovalRequest).where(ApprovalRequest.model == model,
                                                               ApprovalRequest.version == version))
            if row is None:
                return {}
            _require_open(row, before_deadline=False)
            if outcome == "approved" and session.scalar(select(ApprovalVote.id).where(
                    ApprovalVote.model == model, ApprovalVote.version == version, ApprovalVote.accepted.is_(True),
                    ApprovalVote.decision == "reject").limit(1)) is not None:
                raise ApprovalClosedError(f"a rejection of {model} v{version} was recorded while the votes were "
                                          "counted", "count them again: one rejection rejects")
            row.closed_at, row.outcome = utcnow(), outcome
            return {}
        return change

    def add_vote(self, *, model: str, version: str, person: str | None, decision: str, comment: str,
                 accepted: bool, refusal: str | None, via: str, flow_run_id: str | None,
                 input_key: str | None) -> Change:
        """A submitted decision, counted once per form input (nothing when this input was recorded already). An
        accepted vote needs the request open and its deadline ahead, checked in the same transaction:
        ApprovalClosedError otherwise (the caller records it as refused)."""
        def change(session: Session) -> dict[str, Any] | None:
            if flow_run_id and input_key and session.scalar(select(ApprovalVote.id).where(
                    ApprovalVote.flow_run_id == flow_run_id, ApprovalVote.input_key == input_key)) is not None:
                return None
            if accepted:
                request = session.scalar(select(ApprovalRequest).where(ApprovalRequest.model == model,
                                                                       ApprovalRequest.version == version))
                if request is None:
                    raise ApprovalClosedError(f"{model} v{version} has no approval request to vote on",
                                              f"run `modelops approve {model} --version {version}` first")
                _require_open(request, before_deadline=True)
            session.add(ApprovalVote(model=model, version=version, person=person, decision=decision, comment=comment,
                                     accepted=accepted, refusal=refusal, via=via, flow_run_id=flow_run_id,
                                     input_key=input_key, at=utcnow()))
            return {}
        return change

    def votes(self, model: str, version: str) -> list[Vote]:
        with session_scope(self.url) as session:
            rows = session.scalars(select(ApprovalVote).where(ApprovalVote.model == model,
                                                              ApprovalVote.version == version)
                                   .order_by(ApprovalVote.id)).all()
            return [Vote(person=r.person, decision=r.decision, comment=r.comment, accepted=r.accepted,
                         refusal=r.refusal, via=r.via, flow_run_id=r.flow_run_id, input_key=r.input_key,
                         at=_aware(r.at)) for r in rows]

    def inputs_seen(self, flow_run_id: str) -> set[str]:
        """The form inputs of a flow run already counted (or refused)."""
        with session_scope(self.url) as session:
            return {key for key in session.scalars(select(ApprovalVote.input_key).where(
                ApprovalVote.flow_run_id == flow_run_id)) if key}

    # --- API tokens of the online scoring gateway -----------------------------------------------------------
    def add_api_token(self, *, token_id: str, client: str, token_hash: str, models: Sequence[str],
                      created_by: str) -> Change:
        """A new token row (record it with `record_all`, one record per scoped model). A clashing id fails on
        the primary key rather than replacing a token."""
        def change(session: Session) -> dict[str, Any] | None:
            session.add(ApiToken(id=token_id, client=client, token_hash=token_hash, models=list(models),
                                 created_at=utcnow(), created_by=created_by))
            session.flush()
            return {}
        return change

    def revoke_api_token(self, token_id: str, revoked_by: str) -> Change:
        """The token stops working; nothing to change when it is revoked already."""
        def change(session: Session) -> dict[str, Any] | None:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise ModelOpsError(f"no API token has the id {token_id!r}", "see `modelops tokens list --all`")
            if row.revoked_at is not None:
                return None
            row.revoked_at, row.revoked_by = utcnow(), revoked_by
            return {}
        return change

    def api_token(self, token_id: str) -> ApiTokenInfo | None:
        with session_scope(self.url) as session:
            row = session.get(ApiToken, token_id)
            return None if row is None else _token_info(row)

    def api_tokens(self, include_revoked: bool = False) -> list[ApiTokenInfo]:
        """Tokens oldest first, live ones only unless asked for the revoked too."""
        with session_scope(self.url) as session:
            query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
            if not include_revoked:
                query = query.where(ApiToken.revoked_at.is_(None))
            return [_token_info(row) for row in session.scalars(query)]

    def token_credentials(self) -> list[TokenCredential]:
        """Every token's id, client, hash, scope and whether it is revoked: one query of plain columns, for the
        gateway's in-memory table."""
        with session_scope(self.url) as session:
            rows = session.scalars(select(ApiToken)).all()
            access = session.scalars(select(AuditEvent).where(AuditEvent.stage == ACCESS_STAGE)).all() if rows else []
            # A row the access records do not account for (written around the platform, or widened or re-opened
            # there) is never honoured; `modelops audit verify` reports it.
            return [TokenCredential(id=row.id, client=row.client, token_hash=row.token_hash, models=tuple(row.models),
                                    revoked=row.revoked_at is not None)
                    for row in rows if not _token_problems(row, access)]
