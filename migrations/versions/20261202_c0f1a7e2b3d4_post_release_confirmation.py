"""post-release confirmation links, learning reviews and action items

Each key user of each released application is asked, once the release has run a while,
whether it still works; a link per ask (a reminder replaces it) keeps the answer.

Revision ID: c0f1a7e2b3d4
Revises: 4851b53618b3
Create Date: 2026-12-02 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c0f1a7e2b3d4'
down_revision = '4851b53618b3'
branch_labels = None
depends_on = None

OLD_LINK_KINDS = sa.Enum('signoff', 'review', 'sign_in', 'triage', name='outbox_link_kind', native_enum=False, create_constraint=True)
NEW_LINK_KINDS = sa.Enum('signoff', 'review', 'sign_in', 'triage', 'confirmation', name='outbox_link_kind', native_enum=False, create_constraint=True)


def upgrade():
    op.create_table('confirmation_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('key_user', sa.String(length=254), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('active', 'used', 'superseded', 'revoked', name='confirmation_link_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('reminder', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.Enum('works', 'problem', name='confirmation_answer', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('finding_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_confirmation_links_application_id_applications')),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.id'], name=op.f('fk_confirmation_links_finding_id_findings')),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_confirmation_links_package_id_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_confirmation_links'))
    )
    with op.batch_alter_table('confirmation_links', schema=None) as batch_op:
        batch_op.create_index('ix_confirmation_links_package_application', ['package_id', 'application_id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('link_kind', existing_type=OLD_LINK_KINDS, type_=NEW_LINK_KINDS, existing_nullable=True)

    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('impact_level', sa.String(length=16), nullable=True))

    op.create_table('learning_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=200), nullable=False),
    sa.Column('opened_by', sa.String(length=254), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('open', 'completed', name='learning_review_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('factors', sa.Text(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_learning_reviews_application_id_applications')),
    sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_learning_reviews_package_id_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_reviews'))
    )
    with op.batch_alter_table('learning_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_learning_reviews_application_state', ['application_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_learning_reviews_package_id'), ['package_id'], unique=False)

    op.create_table('learning_review_findings',
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.id'], name=op.f('fk_learning_review_findings_finding_id_findings')),
    sa.ForeignKeyConstraint(['review_id'], ['learning_reviews.id'], name=op.f('fk_learning_review_findings_review_id_learning_reviews')),
    sa.PrimaryKeyConstraint('review_id', 'finding_id', name=op.f('pk_learning_review_findings'))
    )
    op.create_table('learning_timeline_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('added_by', sa.String(length=254), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['learning_reviews.id'], name=op.f('fk_learning_timeline_entries_review_id_learning_reviews')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learning_timeline_entries'))
    )
    with op.batch_alter_table('learning_timeline_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_timeline_entries_review_id'), ['review_id'], unique=False)

    op.create_table('action_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=254), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Enum('checklist_change', 'process', 'tooling', name='action_item_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('state', sa.Enum('open', 'done', 'dropped', name='action_item_state', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('finding_ids', sa.JSON(), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=254), nullable=True),
    sa.ForeignKeyConstraint(['review_id'], ['learning_reviews.id'], name=op.f('fk_action_items_review_id_learning_reviews')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_items'))
    )
    with op.batch_alter_table('action_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_items_review_id'), ['review_id'], unique=False)
        batch_op.create_index('ix_action_items_state_due_at', ['state', 'due_at'], unique=False)


def downgrade():
    with op.batch_alter_table('action_items', schema=None) as batch_op:
        batch_op.drop_index('ix_action_items_state_due_at')
        batch_op.drop_index(batch_op.f('ix_action_items_review_id'))
    op.drop_table('action_items')
    with op.batch_alter_table('learning_timeline_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_timeline_entries_review_id'))
    op.drop_table('learning_timeline_entries')
    op.drop_table('learning_review_findings')
    with op.batch_alter_table('learning_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_reviews_package_id'))
        batch_op.drop_index('ix_learning_reviews_application_state')
    op.drop_table('learning_reviews')
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_column('impact_level')

    # The older schema cannot name a confirmation link: such an email loses its link, not itself.
    op.execute(sa.text("UPDATE outbox SET link_kind = NULL, link_id = NULL WHERE link_kind = 'confirmation'"))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('link_kind', existing_type=NEW_LINK_KINDS, type_=OLD_LINK_KINDS, existing_nullable=True)

    with op.batch_alter_table('confirmation_links', schema=None) as batch_op:
        batch_op.drop_index('ix_confirmation_links_package_application')

    op.drop_table('confirmation_links')
