"""integrity: hash-chained append-only audit trail, version records (content pins, gate verdicts, retirement),
registration claims, race-free retrain claims

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_APPEND_ONLY = "audit_events is append-only: its records can be neither changed nor deleted"


def upgrade() -> None:
    op.create_table(
        'version_records',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('version', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('chain', sa.String(length=10), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('manifest', sa.JSON(), nullable=False),
        sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('registered_by', sa.String(length=200), nullable=False),
        sa.Column('security_status', sa.String(length=10), nullable=True),
        sa.Column('validation_status', sa.String(length=10), nullable=True),
        sa.Column('holdout_metrics', sa.JSON(), nullable=False),
        sa.Column('validation_run_id', sa.String(length=64), nullable=True),
        sa.Column('validated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retired_reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model', 'version'),
    )
    op.create_index('ix_version_records_model', 'version_records', ['model'])
    op.create_index('ix_version_records_fingerprint', 'version_records', ['fingerprint'])
    op.create_table(
        'registration_claims',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('claimed_by', sa.String(length=200), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model', 'fingerprint'),
    )
    op.create_table(
        'retrain_claims',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('last_requested_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model'),
    )
    op.create_table(
        'audit_chain_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('head_hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    # The content-derived dedup key let a pre-written row suppress a future record: it goes.
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_column('dedup_key')
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('record_hash', sa.String(length=64), nullable=True))
    head = _seal_existing_records()
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('record_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_audit_events_seq', ['seq'])
    op.execute(sa.text("INSERT INTO audit_chain_head (id, seq, head_hash) VALUES (1, :seq, :hash)")
               .bindparams(seq=head[0], hash=head[1]))
    _create_append_only_triggers()


def _seal_existing_records() -> tuple[int, str]:
    """Chain the records written before this revision, in the order they were written."""
    import json

    from modelops.store.audit_chain import GENESIS, record_hash

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, at, actor, stage, action, model, version, outcome, evidence, event, "
                                "flow_run_id FROM audit_events ORDER BY id")).mappings().all()
    prev, seq = GENESIS, 0
    for row in rows:
        seq += 1
        evidence = row["evidence"] if isinstance(row["evidence"], dict) else json.loads(row["evidence"] or "{}")
        at = row["at"]
        if isinstance(at, str):
            from datetime import datetime

            at = datetime.fromisoformat(at)
        digest = record_hash(seq=seq, prev_hash=prev, at=at, actor=row["actor"], stage=row["stage"],
                             action=row["action"], model=row["model"], version=row["version"],
                             outcome=row["outcome"], evidence=evidence, event=row["event"],
                             flow_run_id=row["flow_run_id"])
        bind.execute(sa.text("UPDATE audit_events SET seq = :seq, prev_hash = :prev, record_hash = :hash "
                             "WHERE id = :id"), {"seq": seq, "prev": prev, "hash": digest, "id": row["id"]})
        prev = digest
    return seq, prev


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                       f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
                   f"RAISE EXCEPTION '{_APPEND_ONLY}'; END; $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_constraint('uq_audit_events_seq', type_='unique')
        batch_op.drop_column('record_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.add_column(sa.Column('dedup_key', sa.String(length=64), nullable=True))
    op.drop_table('audit_chain_head')
    op.drop_table('retrain_claims')
    op.drop_table('registration_claims')
    op.drop_index('ix_version_records_fingerprint', 'version_records')
    op.drop_index('ix_version_records_model', 'version_records')
    op.drop_table('version_records')
