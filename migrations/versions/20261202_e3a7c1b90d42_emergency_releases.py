"""emergency releases: declarations, approvals, approver links, post-implementation reviews

Revision ID: e3a7c1b90d42
Revises: 3b8d5f1e7a42
Create Date: 2026-12-02 19:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3a7c1b90d42'
down_revision = '3b8d5f1e7a42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('emergencies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('declared_by', sa.String(length=254), nullable=False),
    sa.Column('declared_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('review_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('review_waiting_on', sa.JSON(), nullable=False),
    sa.Column('review_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_emergencies_package_id_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergencies')),
    sa.UniqueConstraint('package_id', name=op.f('uq_emergencies_package_id'))
    )
    with op.batch_alter_table('emergencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emergencies_review_due_at'), ['review_due_at'], unique=False)

    op.create_table('emergency_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('emergency_id', sa.Integer(), nullable=False),
    sa.Column('approver', sa.String(length=254), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['emergency_id'], ['emergencies.id'], name=op.f('fk_emergency_approvals_emergency_id_emergencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_approvals')),
    sa.UniqueConstraint('emergency_id', 'approver', name=op.f('uq_emergency_approvals_emergency_id_approver'))
    )
    op.create_table('emergency_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('emergency_id', sa.Integer(), nullable=False),
    sa.Column('approver', sa.String(length=254), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('active', 'used', 'superseded', 'revoked', name='emergency_link_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['emergency_id'], ['emergencies.id'], name=op.f('fk_emergency_links_emergency_id_emergencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_links'))
    )
    with op.batch_alter_table('emergency_links', schema=None) as batch_op:
        batch_op.create_index('ix_emergency_links_emergency_state', ['emergency_id', 'state'], unique=False)


def downgrade():
    with op.batch_alter_table('emergency_links', schema=None) as batch_op:
        batch_op.drop_index('ix_emergency_links_emergency_state')
    op.drop_table('emergency_links')
    op.drop_table('emergency_approvals')
    with op.batch_alter_table('emergencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_emergencies_review_due_at'))
    op.drop_table('emergencies')
