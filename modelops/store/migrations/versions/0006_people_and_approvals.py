"""people, their roles and approver tokens; approval requests and the votes people submit

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'people',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table(
        'role_grants',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('person', sa.String(length=100), sa.ForeignKey('people.name'), nullable=False),
        sa.Column('role', sa.String(length=40), nullable=False),
        sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('granted_by', sa.String(length=200), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_role_grants_person', 'role_grants', ['person'])
    op.create_table(
        'person_tokens',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('person', sa.String(length=100), sa.ForeignKey('people.name'), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_person_tokens_person', 'person_tokens', ['person'])
    op.create_table(
        'approval_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('version', sa.String(length=40), nullable=False),
        sa.Column('required', sa.Integer(), nullable=False),
        sa.Column('roles', sa.JSON(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
        sa.Column('flow_run_id', sa.String(length=64), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model', 'version'),
    )
    op.create_table(
        'approval_votes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('version', sa.String(length=40), nullable=False),
        sa.Column('person', sa.String(length=100), nullable=True),
        sa.Column('decision', sa.String(length=10), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('refusal', sa.Text(), nullable=True),
        sa.Column('via', sa.String(length=10), nullable=False),
        sa.Column('flow_run_id', sa.String(length=64), nullable=True),
        sa.Column('input_key', sa.String(length=100), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('flow_run_id', 'input_key'),
    )
    op.create_index('ix_approval_votes_model', 'approval_votes', ['model'])


def downgrade() -> None:
    op.drop_index('ix_approval_votes_model', 'approval_votes')
    op.drop_table('approval_votes')
    op.drop_table('approval_requests')
    op.drop_index('ix_person_tokens_person', 'person_tokens')
    op.drop_table('person_tokens')
    op.drop_index('ix_role_grants_person', 'role_grants')
    op.drop_table('role_grants')
    op.drop_table('people')
