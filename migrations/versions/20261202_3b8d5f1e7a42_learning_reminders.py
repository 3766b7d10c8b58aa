"""learning reviews and action items: when their reminder was sent

Sending a reminder is a claim: a conditional UPDATE of a NULL `reminded_at`, so each is sent once
however many workers run.

Revision ID: 3b8d5f1e7a42
Revises: 3be77bdf306a
Create Date: 2026-12-02 19:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3b8d5f1e7a42'
down_revision = '3be77bdf306a'
branch_labels = None
depends_on = None

_TABLES = ('learning_reviews', 'action_items')


def upgrade():
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True)
            )


def downgrade():
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('reminded_at')
