"""scenario proposals: scenarios key users rely on that their checklist does not list

Revision ID: 9d3a6b1c4e58
Revises: e3a7c1b90d42
Create Date: 2026-12-02 20:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9d3a6b1c4e58'
down_revision = 'e3a7c1b90d42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scenario_proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('checklist_version_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.Enum('signoff', 'confirmation', name='proposal_source', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('proposed_by', sa.String(length=254), nullable=False),
    sa.Column('scenario', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('open', 'adopted', 'declined', name='proposal_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=254), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('adopted_by_version_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_scenario_proposals_application_id_applications')),
    sa.ForeignKeyConstraint(['checklist_version_id'], ['checklist_versions.id'], name=op.f('fk_scenario_proposals_checklist_version_id_checklist_versions')),
    sa.ForeignKeyConstraint(['adopted_by_version_id'], ['checklist_versions.id'], name=op.f('fk_scenario_proposals_adopted_by_version_id_checklist_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenario_proposals'))
    )
    with op.batch_alter_table('scenario_proposals', schema=None) as batch_op:
        batch_op.create_index('ix_scenario_proposals_application_state', ['application_id', 'state'], unique=False)
        batch_op.create_index('ix_scenario_proposals_source_link', ['source', 'link_id'], unique=False)


def downgrade():
    with op.batch_alter_table('scenario_proposals', schema=None) as batch_op:
        batch_op.drop_index('ix_scenario_proposals_source_link')
        batch_op.drop_index('ix_scenario_proposals_application_state')
    op.drop_table('scenario_proposals')
