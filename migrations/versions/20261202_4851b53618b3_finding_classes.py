"""finding classes for escape analysis

Triage now classifies a finding: escaped past a named checklist item, uncovered by any item,
or not a checklist matter. A finding declined before classes existed was declined as "not
something the checklist should catch", which is what not a checklist matter means: it gets that
class (its state stays declined, its rationale is kept). Findings accepted or addressed before
keep no class: nobody said which item they escaped, and guessing would skew the item counts.

Revision ID: 4851b53618b3
Revises: 5e1f0c7a9d2b
Create Date: 2026-12-02 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4851b53618b3'
down_revision = '5e1f0c7a9d2b'
branch_labels = None
depends_on = None

CLASSES = sa.Enum(
    'escaped_past', 'uncovered', 'not_a_checklist_matter',
    name='finding_classification', native_enum=False, create_constraint=True, length=22,
)


def upgrade():
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('classification', CLASSES, nullable=True))
        batch_op.add_column(sa.Column('escaped_section_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('escaped_item_id', sa.String(length=64), nullable=True))
    findings = sa.table(
        'findings', sa.column('state', sa.String()), sa.column('classification', sa.String())
    )
    op.get_bind().execute(
        findings.update()
        .where(findings.c.state == 'declined')
        .values(classification='not_a_checklist_matter')
    )


def downgrade():
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_column('escaped_item_id')
        batch_op.drop_column('escaped_section_id')
        batch_op.drop_constraint(batch_op.f('ck_findings_finding_classification'), type_='check')
        batch_op.drop_column('classification')
