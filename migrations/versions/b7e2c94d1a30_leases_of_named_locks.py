"""leases of named locks

Adds leases: the holds of the locks of uploads, taken in the database so that every host
sees them, each with an expiry. It starts empty: nothing existing changes.

Revision ID: b7e2c94d1a30
Revises: 6808de315f85
Create Date: 2026-12-03 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'b7e2c94d1a30'
down_revision = '6808de315f85'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('leases',
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=1), nullable=False),
    sa.Column('chunk', sa.BigInteger(), nullable=True),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'holder', name=op.f('pk_leases')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )


def downgrade():
    op.drop_table('leases')
