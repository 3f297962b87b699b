"""approver tokens keep the public key of the signing key their secret seeds, not a hash of the token

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 11:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A token issued before approvals were signed has no public key: it is refused with the advice to issue a new
    # one (its hash cannot give the key back).
    with op.batch_alter_table('person_tokens') as batch:
        batch.add_column(sa.Column('public_key', sa.String(length=64), nullable=True))
        batch.drop_column('token_hash')


def downgrade() -> None:
    with op.batch_alter_table('person_tokens') as batch:
        batch.add_column(sa.Column('token_hash', sa.String(length=64), nullable=False, server_default=''))
        batch.drop_column('public_key')
