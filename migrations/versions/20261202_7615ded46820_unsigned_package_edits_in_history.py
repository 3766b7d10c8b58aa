"""unsigned package edits (title, planned date) in the revision history

Revision ID: 7615ded46820
Revises: 848f46cdacaa
Create Date: 2026-12-02 06:30:42.073820

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7615ded46820'
down_revision = '848f46cdacaa'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('package_revisions', schema=None) as batch_op:
        # Every row written before this migration recorded a real (signed) revision.
        batch_op.add_column(sa.Column('signed', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.drop_constraint(batch_op.f('uq_package_revisions_package_id_revision'), type_='unique')
        batch_op.create_index(batch_op.f('ix_package_revisions_package_id'), ['package_id'], unique=False)
        batch_op.create_index('uq_package_revisions_signed_revision', ['package_id', 'revision'], unique=True, sqlite_where=sa.text('signed'), postgresql_where=sa.text('signed'))


def downgrade():
    # The old schema has room for one row per revision: edits of unsigned fields are dropped
    # from the history (the audit trail still holds them).
    op.execute(sa.text("DELETE FROM package_revisions WHERE NOT signed"))
    with op.batch_alter_table('package_revisions', schema=None) as batch_op:
        batch_op.drop_index('uq_package_revisions_signed_revision', sqlite_where=sa.text('signed'), postgresql_where=sa.text('signed'))
        batch_op.drop_index(batch_op.f('ix_package_revisions_package_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_package_revisions_package_id_revision'), ['package_id', 'revision'])
        batch_op.drop_column('signed')
