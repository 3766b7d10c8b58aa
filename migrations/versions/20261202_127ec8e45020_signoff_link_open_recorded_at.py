"""sign-off link: when an open was last recorded

Opening a sign-off link appends a `link.opened` audit event at most once per link per hour;
the conditional update of this column is what decides, across processes, which open is recorded.

Revision ID: 127ec8e45020
Revises: 52c82a3d4033
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '127ec8e45020'
down_revision = '52c82a3d4033'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('signoff_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_recorded_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('signoff_links', schema=None) as batch_op:
        batch_op.drop_column('open_recorded_at')
