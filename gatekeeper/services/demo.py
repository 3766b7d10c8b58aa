"""Sample data for `gatekeeper demo`: approve the sample checklists so packages can use them."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, ChecklistVersion
from gatekeeper.domain import governance
from gatekeeper.domain.clock import Clock
from gatekeeper.services import checklists

DEMO_CONSULTED = "Demo data: the key users named in the checklist"


def prepare(session: Session, *, clock: Clock) -> Iterator[str]:
    pending = session.execute(
        sa.select(Application.slug, ChecklistVersion.version)
        .join(ChecklistVersion)
        .where(ChecklistVersion.state == governance.PENDING_REVIEW)
        .order_by(Application.slug)
    ).all()
    for slug, version in pending:
        stored = checklists.get_version(session, slug, version)
        reviewer = checklists.checklist_of(stored).governance.reviewers[0]
        checklists.review_version(
            session,
            application=slug,
            version=version,
            action=governance.APPROVE,
            reviewer=reviewer,
            consulted=DEMO_CONSULTED,
            clock=clock,
        )
        yield f"checklist {slug} v{version}: approved by {reviewer}"
