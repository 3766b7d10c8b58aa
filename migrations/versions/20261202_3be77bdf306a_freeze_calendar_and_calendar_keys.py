"""freeze calendar and calendar keys

The freeze calendar file's versions (synced and approved like checklist versions) and each
person's secret calendar feed keys, stored as sha256 only.

Revision ID: 3be77bdf306a
Revises: 9d3b6e21f4a7
Create Date: 2026-12-02 19:10:00.354399

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3be77bdf306a'
down_revision = '9d3b6e21f4a7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('calendar_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=254), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_calendar_keys_key_hash'))
    )
    with op.batch_alter_table('calendar_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_keys_owner'), ['owner'], unique=False)

    op.create_table('freeze_calendar_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('source_yaml', sa.Text(), nullable=False),
    sa.Column('source_path', sa.String(length=500), nullable=False),
    sa.Column('author', sa.String(length=254), nullable=True),
    sa.Column('state', sa.Enum('pending_review', 'approved', 'changes_requested', 'superseded', name='freeze_calendar_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=254), nullable=True),
    sa.Column('review_notes', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_freeze_calendar_versions')),
    sa.UniqueConstraint('version', name=op.f('uq_freeze_calendar_versions_version'))
    )


def downgrade():
    op.drop_table('freeze_calendar_versions')
    with op.batch_alter_table('calendar_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_keys_owner'))

    op.drop_table('calendar_keys')
