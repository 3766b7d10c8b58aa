"""single sign-on attempts and role-less accounts

Each single sign-on round trip begun is recorded (by the hash of its state) so its callback
works once. An account whose identity-provider groups map to no role keeps its row, history
and address, with no role: it gets no access.

Revision ID: b9257705958c
Revises: 23784756da03
Create Date: 2026-12-02 07:17:14.200127

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b9257705958c'
down_revision = '23784756da03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sso_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_attempts')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_sso_attempts_state_hash'))
    )
    with op.batch_alter_table('sso_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_attempts_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('role',
               existing_type=sa.VARCHAR(length=19),
               nullable=True)


def downgrade():
    # The old schema needs a role on every account. A role-less account had no access; it
    # stays without access as a deactivated account with the weakest role, its sessions ended.
    op.execute(sa.text(
        "UPDATE users SET role = 'governance_reviewer', active = false, "
        "deactivated_at = COALESCE(deactivated_at, CURRENT_TIMESTAMP), "
        "session_version = session_version + 1 WHERE role IS NULL"
    ))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('role',
               existing_type=sa.VARCHAR(length=19),
               nullable=False)

    with op.batch_alter_table('sso_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_attempts_expires_at'))

    op.drop_table('sso_attempts')
