"""declared file size of uploads, owner of upload events

Revision ID: c3f1a7d2e905
Revises: 8a10bd06d9c0
Create Date: 2026-12-01 10:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3f1a7d2e905'
down_revision = '8a10bd06d9c0'
branch_labels = None
depends_on = None


def upgrade():
    # The whole file's size as a client declared it (fileSize), checked at completion.
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_size', sa.BigInteger(), nullable=True))
    # The API key whose upload an event is about, so that an owner sees only their events.
    with op.batch_alter_table('upload_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.create_index(batch_op.f('ix_upload_events_owner_id'), ['owner_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('upload_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_events_owner_id'))
        batch_op.drop_column('owner_id')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('file_size')
