"""api keys and upload owners

Adds api_keys (only SHA-256 hashes of keys are stored) and, on uploads, the owning key
(owner_id, 0 for uploads made without a key) and the creating client (for per-client limits).
The identity of an upload becomes (owner_id, md5, name_digest): the new unique constraint is
created before the old one is dropped, so that no moment is without one. Existing uploads
get owner 0, the owner of every upload made while access control is off.

Revision ID: 40632d2cab89
Revises: 2910e9b13729
Create Date: 2026-11-24 09:52:47.107465

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '40632d2cab89'
down_revision = '2910e9b13729'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('revoked_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin'
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('client', sa.String(length=64), server_default='', nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_uploads_owner_id_md5_name_digest'),
                                          ['owner_id', 'md5', 'name_digest'])
        batch_op.drop_constraint(batch_op.f('uq_uploads_md5_name_digest'), type_='unique')
        batch_op.create_index(batch_op.f('ix_uploads_client'), ['client'], unique=False)


def downgrade():
    # Fails, as it must, if two owners hold the same (md5, name): that cannot be undone.
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_client'))
        batch_op.create_unique_constraint(batch_op.f('uq_uploads_md5_name_digest'),
                                          ['md5', 'name_digest'])
        batch_op.drop_constraint(batch_op.f('uq_uploads_owner_id_md5_name_digest'), type_='unique')
        batch_op.drop_column('client')
        batch_op.drop_column('owner_id')

    op.drop_table('api_keys')
