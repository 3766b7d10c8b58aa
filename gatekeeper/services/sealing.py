"""Sealing records older than record MACs and package seals, once, after upgrading (see
docs/security.md).

The migration that added the MAC columns could not sign anything: the keys are not in the
database. Sealing trusts the rows as they are at that moment, which is exactly the trust the
previous version placed in them, and writes which rows it sealed into the signed audit trail,
so an auditor can compare them with the `signoff.recorded` and `checklist.*` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import ChecklistVersion, GovernanceReview, Package, Signoff
from gatekeeper.services import audit, integrity, package_seals


@dataclass(frozen=True)
class Sealed:
    signoffs: tuple[int, ...]
    reviews: tuple[int, ...]
    packages: tuple[str, ...] = ()


def seal_unsigned_records(session: Session, *, actor: str, now: datetime) -> Sealed:
    """MAC every sign-off and governance review that has none, and seal every package that has
    no seal, in one audited transaction."""
    signoffs = session.scalars(
        sa.select(Signoff).where(Signoff.mac.is_(None)).order_by(Signoff.id)
    ).all()
    for signoff in signoffs:
        target = signoff.package_application
        package = session.get_one(Package, signoff.package_id)
        integrity.seal_signoff(session, signoff, package, target)
    reviews = session.execute(
        sa.select(GovernanceReview, ChecklistVersion)
        .join(ChecklistVersion, GovernanceReview.checklist_version_id == ChecklistVersion.id)
        .where(GovernanceReview.mac.is_(None))
        .order_by(GovernanceReview.id)
    ).all()
    for review, version in reviews:
        integrity.seal_review(session, review, version)
    # Packages made before package seals: sealed over what they hold now.
    unsealed = session.scalars(
        sa.select(Package).where(Package.record_seal.is_(None)).order_by(Package.id)
    ).all()
    for package in unsealed:
        package_seals.watch(session, package.id, new=True)
    sealed = Sealed(
        tuple(s.id for s in signoffs),
        tuple(r.id for r, _ in reviews),
        tuple(p.key for p in unsealed),
    )
    if sealed.signoffs or sealed.reviews or sealed.packages:
        audit.record(
            session,
            action="records.sealed",
            actor=actor,
            subject=(
                f"{len(sealed.signoffs)} sign-off(s), {len(sealed.reviews)} review(s), "
                f"{len(sealed.packages)} package(s)"
            ),
            now=now,
            details={
                "signoffs": list(sealed.signoffs),
                "governance_reviews": list(sealed.reviews),
                "packages": list(sealed.packages),
            },
        )
    return sealed
