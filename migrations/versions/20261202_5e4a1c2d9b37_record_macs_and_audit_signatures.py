"""record MACs on sign-offs and governance reviews; Ed25519 signatures on audit events

The keys live outside the database (GATEKEEPER_RECORD_KEYS, GATEKEEPER_AUDIT_SIGNING_KEY_FILE),
so this migration cannot sign anything: the columns are nullable and rows older than it stay
unsigned. Until `gatekeeper audit seal-records` signs them (run once after upgrading, with the
keys configured), an unsigned sign-off or review is not counted and the gate names it; unsigned
audit events are accepted only before the first signed one. See docs/security.md.

Revision ID: 5e4a1c2d9b37
Revises: 7c4f2a9d1e63
Create Date: 2026-12-02 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e4a1c2d9b37'
down_revision = '7c4f2a9d1e63'
branch_labels = None
depends_on = None

_RECORDS = ('signoffs', 'governance_reviews')


def upgrade():
    for table in _RECORDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column('mac_key_id', sa.String(length=16), nullable=True))
    # Plain ADD COLUMN, never a batch copy: copying audit_events would drop its append-only
    # triggers on SQLite.
    op.add_column('audit_events', sa.Column('signature', sa.String(length=100), nullable=True))
    op.add_column('audit_events', sa.Column('key_id', sa.String(length=16), nullable=True))


def downgrade():
    # SQLite (3.35 and newer) and PostgreSQL both drop a plain column in place, which keeps
    # the audit table's triggers.
    op.execute('ALTER TABLE audit_events DROP COLUMN key_id')
    op.execute('ALTER TABLE audit_events DROP COLUMN signature')
    for table in _RECORDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('mac_key_id')
            batch_op.drop_column('mac')
