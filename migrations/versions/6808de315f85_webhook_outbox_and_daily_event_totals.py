"""webhook outbox and daily event totals

Adds hook_deliveries, the outbox of webhook events (one row per event and endpoint, written
in the transaction of the change it reports), and upload_event_days, the daily totals that
pruned upload events are folded into. Both start empty: nothing existing changes.

Revision ID: 6808de315f85
Revises: c3f1a7d2e905
Create Date: 2026-12-02 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '6808de315f85'
down_revision = 'c3f1a7d2e905'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('hook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('upload_key', sa.String(length=32), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('lease', sa.String(length=32), nullable=True),
    sa.Column('claimed_until', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('delivered_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hook_deliveries')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hook_deliveries_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_hook_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_hook_deliveries_upload_key_status', ['upload_key', 'status'], unique=False)

    op.create_table('upload_event_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('owner_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'owner_id', 'kind', name=op.f('pk_upload_event_days')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )


def downgrade():
    op.drop_table('upload_event_days')
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_hook_deliveries_upload_key_status')
        batch_op.drop_index('ix_hook_deliveries_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_hook_deliveries_event_id'))
        batch_op.drop_index(batch_op.f('ix_hook_deliveries_created_at'))

    op.drop_table('hook_deliveries')
