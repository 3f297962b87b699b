"""monitoring run kind

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 04:58:44.904238
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    with op.batch_alter_table('monitoring_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), server_default='monitor', nullable=False))

    


def downgrade() -> None:
    
    with op.batch_alter_table('monitoring_runs', schema=None) as batch_op:
        batch_op.drop_column('kind')

    
