"""outbound webhooks

Webhook subscriptions (URL, events, sealed signing secret), a delivery log per subscription,
and outbox rows of a second kind: one webhook event for one subscription, with its stable
Standard Webhooks id.

Revision ID: 3e7d1c9a5b20
Revises: b9257705958c
Create Date: 2026-12-02 13:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3e7d1c9a5b20'
down_revision = 'b9257705958c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_subscription_at', ['subscription_id', 'id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.Enum('email', 'webhook', name='outbox_kind', native_enum=False, create_constraint=True), server_default='email', nullable=False))
        batch_op.add_column(sa.Column('subscription_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('webhook_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_subscription_id_webhook_subscriptions'), 'webhook_subscriptions', ['subscription_id'], ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_subscription_id_webhook_subscriptions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbox_subscription_id'))
        batch_op.drop_column('webhook_id')
        batch_op.drop_column('subscription_id')
        batch_op.drop_constraint(batch_op.f('ck_outbox_outbox_kind'), type_='check')
        batch_op.drop_column('kind')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_subscription_at')

    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_subscriptions')
