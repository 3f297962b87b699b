"""alerts, retrain requests, failed batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:18:07.079279
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('alert_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=True),
    sa.Column('check', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=200), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_deliveries_model'), ['model'], unique=False)

    op.create_table('alert_states',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('check', sa.String(length=40), nullable=False),
    sa.Column('firing', sa.Boolean(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model', 'check')
    )
    op.create_table('retrain_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('retrain_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retrain_requests_model'), ['model'], unique=False)

    with op.batch_alter_table('prediction_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=10), server_default='ok', nullable=False))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))

    


def downgrade() -> None:
    
    with op.batch_alter_table('prediction_batches', schema=None) as batch_op:
        batch_op.drop_column('error')
        batch_op.drop_column('status')

    with op.batch_alter_table('retrain_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retrain_requests_model'))

    op.drop_table('retrain_requests')
    op.drop_table('alert_states')
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_deliveries_model'))

    op.drop_table('alert_deliveries')
    
