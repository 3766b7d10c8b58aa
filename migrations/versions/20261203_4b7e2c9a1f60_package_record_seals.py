"""package record seals: a keyed MAC over which sign-offs and applications a package holds

Revision ID: 4b7e2c9a1f60
Revises: 9d3a6b1c4e58
Create Date: 2026-12-03 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4b7e2c9a1f60'
down_revision = '9d3a6b1c4e58'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_seal', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_column('record_seal')
