"""deputies and absences

People record when they are away; while they are, their sign-off requests go to the deputies
their checklist names, and a deputy's sign-off says whose place it took.

Revision ID: 9d3b6e21f4a7
Revises: 5e4a1c2d9b37
Create Date: 2026-12-02 19:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9d3b6e21f4a7'
down_revision = '5e4a1c2d9b37'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('absences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person', sa.String(length=254), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=254), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at >= starts_at', name=op.f('ck_absences_ends_after_start')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_absences'))
    )
    with op.batch_alter_table('absences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_absences_ends_at'), ['ends_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_absences_person'), ['person'], unique=False)
    with op.batch_alter_table('signoff_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('handed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('signoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of', sa.String(length=254), nullable=True))
    with op.batch_alter_table('signoff_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('signoff_links', schema=None) as batch_op:
        batch_op.drop_column('handed_at')
    with op.batch_alter_table('signoffs', schema=None) as batch_op:
        batch_op.drop_column('on_behalf_of')
    with op.batch_alter_table('signoff_requests', schema=None) as batch_op:
        batch_op.drop_column('handed_at')
        batch_op.drop_column('on_behalf_of')
    with op.batch_alter_table('absences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_absences_person'))
        batch_op.drop_index(batch_op.f('ix_absences_ends_at'))

    op.drop_table('absences')
