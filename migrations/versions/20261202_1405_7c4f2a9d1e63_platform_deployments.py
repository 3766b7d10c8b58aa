"""CI platform deployments waiting on the gate

Deployments that GitHub, GitLab or Azure DevOps hold until Gatekeeper decides, with the one
decision posted for each, when the worker next polls a platform, and a third kind of outbox
row: one call to a platform.

Revision ID: 7c4f2a9d1e63
Revises: c0f1a7e2b3d4
Create Date: 2026-12-02 14:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c4f2a9d1e63'
down_revision = 'c0f1a7e2b3d4'
branch_labels = None
depends_on = None

OLD_KINDS = ('email', 'webhook')
NEW_KINDS = ('email', 'webhook', 'platform_call')


def _kinds(batch_op, old, new):
    """Swap the check constraint of outbox.kind, the column widened or narrowed to fit."""
    batch_op.drop_constraint(batch_op.f('ck_outbox_outbox_kind'), type_='check')
    batch_op.alter_column('kind', existing_type=sa.String(max(map(len, old))), type_=sa.String(max(map(len, new))), existing_nullable=False, existing_server_default='email')
    batch_op.create_check_constraint('outbox_kind', sa.column('kind').in_(new))


def upgrade():
    op.create_table('platform_deployments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.Enum('github', 'gitlab', 'azure_devops', name='platform', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('external_id', sa.String(length=500), nullable=False),
    sa.Column('project', sa.String(length=255), nullable=False),
    sa.Column('environment', sa.String(length=255), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('sha', sa.String(length=64), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=True),
    sa.Column('callback_sealed', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('waiting', 'approved', 'rejected', name='platform_deployment_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('reports', sa.Integer(), nullable=False),
    sa.Column('last_report', sa.Text(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_platform_deployments_package_id_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_deployments')),
    sa.UniqueConstraint('platform', 'external_id', name=op.f('uq_platform_deployments_platform_external_id'))
    )
    with op.batch_alter_table('platform_deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_deployments_package_id'), ['package_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_platform_deployments_state'), ['state'], unique=False)

    op.create_table('platform_polls',
    sa.Column('platform', sa.Enum('github', 'gitlab', 'azure_devops', name='platform', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('platform', name=op.f('pk_platform_polls'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        _kinds(batch_op, OLD_KINDS, NEW_KINDS)


def downgrade():
    op.execute("DELETE FROM outbox WHERE kind = 'platform_call'")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        _kinds(batch_op, NEW_KINDS, OLD_KINDS)

    with op.batch_alter_table('platform_deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_deployments_state'))
        batch_op.drop_index(batch_op.f('ix_platform_deployments_package_id'))

    op.drop_table('platform_polls')
    op.drop_table('platform_deployments')
