"""Tables of the governance store. Change them only together with a new Alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AuditEvent(Base):
    """Who did what, when, to which model version, with what outcome and evidence. Append-only."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(80))
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    outcome: Mapped[str] = mapped_column(String(40))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A hash chain: each record's hash covers the previous record's hash and its own canonical content
    # (modelops.store.audit_chain), so an edited, deleted, inserted or reordered record breaks the chain.
    # Database triggers refuse UPDATE and DELETE on this table (migration 0004).
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The newest link of the audit chain: one row, updated first in every transaction that appends a record,
    so concurrent writers queue on it (SQLite's write lock, PostgreSQL's row lock) and never fork the chain."""

    __tablename__ = "audit_chain_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))


class VersionRecord(Base):
    """The governance record of a registered version, the system of record for every gate: the content hash of
    every file it was registered with, its validation verdict and evidence, and its retirement. MLflow tags and
    aliases only mirror it for people browsing the MLflow UI."""

    __tablename__ = "version_records"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # trained | external
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    # "continue": the registered event may take the version through the onboarding chain; "stop": a retrain's
    # challenger, promoted only by winning the comparison.
    chain: Mapped[str] = mapped_column(String(10))
    content_hash: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, str]] = mapped_column(JSON)  # relative file path -> sha256
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_by: Mapped[str] = mapped_column(String(200))
    security_status: Mapped[str | None] = mapped_column(String(10), nullable=True)  # passed | failed
    validation_status: Mapped[str | None] = mapped_column(String(10), nullable=True)  # passed | failed
    holdout_metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    validation_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retired_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class RegistrationClaim(Base):
    """The right to register a version built from one set of inputs: concurrent identical registrations insert
    the same (model, fingerprint), the database lets exactly one win. Released when that version retires."""

    __tablename__ = "registration_claims"
    __table_args__ = (UniqueConstraint("model", "fingerprint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    claimed_by: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # approved | rejected | pending
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Deployment(Base):
    """A version serving under a role (champion, challenger) from deployed_at until ended_at."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    strategy: Mapped[str] = mapped_column(String(40))
    deployed_by: Mapped[str] = mapped_column(String(200))
    deployed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Lineage(Base):
    """Where a version came from: its training window and data hash, code version, and parent version."""

    __tablename__ = "lineage"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # trained | external
    model_uri: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    train_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    train_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    data_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PredictionBatch(Base):
    """Index of the prediction log: one row per scored batch, the rows themselves live in Parquet."""

    __tablename__ = "prediction_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    first_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="ok", server_default="ok")  # ok | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class GroundTruthBatch(Base):
    """Index of arrived labels (Parquet), joined to logged predictions by prediction id."""

    __tablename__ = "ground_truth_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    path: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MonitoringRun(Base):
    __tablename__ = "monitoring_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(10))  # ok | warn | breach | skipped
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # monitor: every check of one model; sweep: drift only, many models at once
    kind: Mapped[str] = mapped_column(String(10), default="monitor", server_default="monitor")


class MonitoringResult(Base):
    """One number of one check of one monitoring run: the time series operators and executives read."""

    __tablename__ = "monitoring_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("monitoring_runs.id"), index=True)
    check: Mapped[str] = mapped_column(String(40))  # drift | drift-column | performance | volume
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(10))


class RetrainRequest(Base):
    """A breach that asked for retraining; later breaches within the spec's cool-down do not ask again."""

    __tablename__ = "retrain_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RetrainClaim(Base):
    """When a model last asked for retraining: the row a racing monitor must update atomically to ask again."""

    __tablename__ = "retrain_claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), unique=True)
    last_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AlertState(Base):
    """Whether an alert is firing for a model's check, and when it was last announced."""

    __tablename__ = "alert_states"
    __table_args__ = (UniqueConstraint("model", "check"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100))
    check: Mapped[str] = mapped_column(String(40))
    firing: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AlertDelivery(Base):
    """Every attempt to deliver an alert or recovery, delivered or not."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    check: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))  # alert | recovery
    channel: Mapped[str] = mapped_column(String(200))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    """A consuming application's credential for the online scoring gateway, scoped to the models it may call.

    The token text is `mop_<id>_<secret>`; only its SHA-256 is kept. A plain, unsalted hash is right here: the
    secret is 32 random bytes, so there is nothing to guess or look up in a table, and salts or a slow KDF (which
    protect low-entropy passwords) would only slow down every request the gateway authorizes."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public: shown by `tokens list`, in logs
    client: Mapped[str] = mapped_column(String(100), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole token text, never the token
    models: Mapped[list[str]] = mapped_column(JSON)  # model names, or ["*"] for every model
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Person(Base):
    """Someone who acts on the platform, named as MODELOPS_USER names them. Roles come from RoleGrant rows."""

    __tablename__ = "people"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))


class RoleGrant(Base):
    """A role held by a person from granted_at until revoked_at; a grant no audit record backs is never honoured."""

    __tablename__ = "role_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person: Mapped[str] = mapped_column(ForeignKey("people.name"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PersonToken(Base):
    """A person's approver token (modelops.credentials format): only the public key of the signing key its secret
    seeds is kept (modelops.approval_signing). One live token a person: issuing a new one revokes the old."""

    __tablename__ = "person_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person: Mapped[str] = mapped_column(ForeignKey("people.name"), index=True)
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApprovalRequest(Base):
    """A version waiting for people: how many approvals from which roles, until when, and which flow run waits."""

    __tablename__ = "approval_requests"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    required: Mapped[int] = mapped_column(Integer)
    roles: Mapped[list[str]] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)


class ApprovalVote(Base):
    """One submitted decision (form or CLI): accepted, or refused with the reason (no valid token, four eyes...).
    A form input is counted once: (flow_run_id, input_key) is unique."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("flow_run_id", "input_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(40))
    person: Mapped[str | None] = mapped_column(String(100), nullable=True)  # None: no valid token
    decision: Mapped[str] = mapped_column(String(10))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    accepted: Mapped[bool] = mapped_column(Boolean)
    refusal: Mapped[str | None] = mapped_column(Text, nullable=True)
    via: Mapped[str] = mapped_column(String(10))  # form | cli
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
