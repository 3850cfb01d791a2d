"""generation of resumable uploads (a newer request ends an older one), their digests

Revision ID: d4e8b1c7a920
Revises: b7e2c94d1a30
Create Date: 2026-12-07 17:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4e8b1c7a920'
down_revision = 'b7e2c94d1a30'
branch_labels = None
depends_on = None


def upgrade():
    # Raised by each request of the IETF draft that takes an upload over; a request still
    # reading a body under an older value stops (protocol "ietf" needs no column of its own:
    # it is a new value of uploads.protocol).
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.BigInteger(), server_default='0',
                                      nullable=False))
        # The representation digests (RFC 9530) a creation gave, checked at completion.
        batch_op.add_column(sa.Column('repr_digest', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('repr_digest')
        batch_op.drop_column('generation')
