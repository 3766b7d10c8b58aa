"""Named queries more than one service needs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, PackageApplication


def active_applications(
    session: Session, package_id: int
) -> list[tuple[PackageApplication, Application]]:
    """The applications a package holds at its current revision, by slug."""
    rows = session.execute(
        sa.select(PackageApplication, Application)
        .join(Application, Application.id == PackageApplication.application_id)
        .where(
            PackageApplication.package_id == package_id,
            PackageApplication.removed_in_revision.is_(None),
        )
        .order_by(Application.slug)
    ).all()
    return [(target, application) for target, application in rows]
