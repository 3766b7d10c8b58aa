"""checklist authors, moot mail and triage links

Every author of a checklist version (and why part of it may be unknown), the partial approval
such a version gets first; the link an outbox row carries, and the `moot` state of a row whose
link died before it was sent; emailed triage links for a finding's reviewers.

Revision ID: 23784756da03
Revises: 127ec8e45020
Create Date: 2026-12-02 09:00:00.000000

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '23784756da03'
down_revision = '127ec8e45020'
branch_labels = None
depends_on = None

UNKNOWN_BEFORE = "it was synced before authors were recorded, and no author was given"


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


OLD_OUTCOMES = _enum('review_outcome', 'approved', 'changes_requested', 'reaffirmed')
NEW_OUTCOMES = _enum('review_outcome', 'approved', 'changes_requested', 'reaffirmed', 'partially_approved')
OLD_OUTBOX = _enum('outbox_state', 'queued', 'sending', 'sent', 'dead')
NEW_OUTBOX = _enum('outbox_state', 'queued', 'sending', 'sent', 'dead', 'moot')


def upgrade():
    with op.batch_alter_table('checklist_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authors', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('authorship_unknown', sa.Text(), nullable=True))
    versions = sa.table(
        'checklist_versions',
        sa.column('id', sa.Integer()),
        sa.column('author', sa.String()),
        sa.column('authors', sa.JSON()),
        sa.column('authorship_unknown', sa.Text()),
    )
    connection = op.get_bind()
    # The one author recorded so far (the last commit's, or --author) stays one of them; a
    # version synced without one is of unknown authorship.
    for row_id, author in connection.execute(sa.select(versions.c.id, versions.c.author)).all():
        connection.execute(
            versions.update()
            .where(versions.c.id == row_id)
            .values(
                authors=[author] if author else [],
                authorship_unknown=None if author else UNKNOWN_BEFORE,
            )
        )
    with op.batch_alter_table('checklist_versions', schema=None) as batch_op:
        batch_op.alter_column('authors', existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table('governance_reviews', schema=None) as batch_op:
        batch_op.alter_column('outcome', existing_type=OLD_OUTCOMES, type_=NEW_OUTCOMES, existing_nullable=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=OLD_OUTBOX, type_=NEW_OUTBOX, existing_nullable=False)
        batch_op.add_column(sa.Column('link_kind', sa.Enum('signoff', 'review', 'sign_in', 'triage', name='outbox_link_kind', native_enum=False, create_constraint=True), nullable=True))
        batch_op.add_column(sa.Column('link_id', sa.Integer(), nullable=True))

    op.create_table('triage_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=254), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('active', 'used', 'superseded', 'revoked', name='triage_link_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.id'], name=op.f('fk_triage_links_finding_id_findings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triage_links'))
    )
    with op.batch_alter_table('triage_links', schema=None) as batch_op:
        batch_op.create_index('ix_triage_links_finding_state', ['finding_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_triage_links_reviewer'), ['reviewer'], unique=False)


def downgrade():
    with op.batch_alter_table('triage_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triage_links_reviewer'))
        batch_op.drop_index('ix_triage_links_finding_state')

    op.drop_table('triage_links')

    connection = op.get_bind()
    # Rows and reviews the older schema cannot hold: a moot email was never going to be sent,
    # and a first of two approvals left its version pending.
    connection.execute(sa.text("DELETE FROM outbox WHERE state = 'moot'"))
    connection.execute(sa.text("DELETE FROM governance_reviews WHERE outcome = 'partially_approved'"))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('link_id')
        batch_op.drop_constraint(batch_op.f('ck_outbox_outbox_link_kind'), type_='check')
        batch_op.drop_column('link_kind')
        batch_op.alter_column('state', existing_type=NEW_OUTBOX, type_=OLD_OUTBOX, existing_nullable=False)

    with op.batch_alter_table('governance_reviews', schema=None) as batch_op:
        batch_op.alter_column('outcome', existing_type=NEW_OUTCOMES, type_=OLD_OUTCOMES, existing_nullable=False)

    with op.batch_alter_table('checklist_versions', schema=None) as batch_op:
        batch_op.drop_column('authorship_unknown')
        batch_op.drop_column('authors')
