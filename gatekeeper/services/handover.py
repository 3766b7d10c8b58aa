"""Handing an away person's sign-off requests to their deputies, and back when they return."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Package, PackageApplication, SignoffRequest
from gatekeeper.domain import absence as absence_rules
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.absence import Absence
from gatekeeper.services import audit
from gatekeeper.services.checklists import checklist_of


def available_stand_ins(
    request: SignoffRequest, person: str, assembler: str, absences: Sequence[Absence], now: datetime
) -> tuple[str, ...]:
    """The deputies who may take `person`'s place in this request now (none of them away)."""
    version = request.package_application.checklist_version
    if version is None:
        return ()
    checklist = checklist_of(version)
    item = next(
        (i for s, i in checklist.items() if (s.id, i.id) == (request.section_id, request.item_id)),
        None,
    )
    eligible = signoff_rules.eligible_signers(
        checklist, kind=request.kind, item=item, assembler=assembler
    )
    return tuple(
        d
        for d in signoff_rules.stand_ins(
            checklist,
            person=person,
            assembler=assembler,
            barred=signoff_rules.barred_deputies(checklist, request.kind),
            eligible=eligible,
        )
        if absence_rules.away_until(absences, d, now) is None
    )


def still_asked() -> sa.ColumnElement[bool]:
    """A request (joined with its package application) that the package still asks: its
    application is in the package and has not changed since the request was made."""
    return sa.and_(
        PackageApplication.removed_in_revision.is_(None),
        SignoffRequest.revision >= PackageApplication.changed_in_revision,
    )


def deputies_place(request: SignoffRequest, person: str) -> sa.ColumnElement[bool]:
    """The deputies' requests that fill `person`'s place in the requirement `request` asks."""
    return sa.and_(
        SignoffRequest.package_application_id == request.package_application_id,
        SignoffRequest.kind == request.kind,
        SignoffRequest.section_id.is_(None)
        if request.section_id is None
        else SignoffRequest.section_id == request.section_id,
        SignoffRequest.item_id.is_(None)
        if request.item_id is None
        else SignoffRequest.item_id == request.item_id,
        SignoffRequest.revision == request.revision,
        SignoffRequest.on_behalf_of == person,
    )


def hand_over(
    session: Session,
    package: Package,
    requests: Sequence[SignoffRequest],
    absences: Sequence[Absence],
    now: datetime,
) -> dict[str, list[str]]:
    """Each pending request of someone away now goes to their available deputies: it is
    revoked (kept as the place they fill) and each deputy gets a request of their own. A
    request whose signer has no available deputy stays theirs; the gate says SIGNER_AWAY.
    Returns, per away person, the deputies who got something."""
    handed: dict[str, list[str]] = {}
    for request in requests:
        if request.state != signoff_rules.PENDING or request.on_behalf_of is not None:
            continue
        if absence_rules.away_until(absences, request.signer, now) is None:
            continue
        deputies = available_stand_ins(request, request.signer, package.assembled_by, absences, now)
        if not deputies:
            continue
        request.state, request.handed_at, request.closed_at = signoff_rules.REVOKED, now, now
        session.add_all(
            SignoffRequest(
                package_id=package.id,
                package_application=request.package_application,
                kind=request.kind,
                section_id=request.section_id,
                item_id=request.item_id,
                signer=deputy,
                on_behalf_of=request.signer,
                revision=request.revision,
                state=signoff_rules.PENDING,
                created_at=now,
            )
            for deputy in deputies
        )
        got = handed.setdefault(request.signer, [])
        got.extend(d for d in deputies if d not in got)
    session.flush()
    for person, given in sorted(handed.items()):
        audit.record_package_event(
            session,
            package,
            action="signoff.handed_to_deputies",
            actor=audit.SYSTEM,
            subject=f"{person} is away: sign-off requests handed to {', '.join(given)}",
            now=now,
            details={"person": person, "deputies": given},
        )
    return handed


def take_back(
    session: Session, package: Package, absences: Sequence[Absence], now: datetime
) -> dict[str, list[str]]:
    """The places nobody filled while their person was away go back to the person once they
    are back: their request is pending again and the deputies' requests for it die. Returns,
    per person back, the deputies whose requests died."""
    handed = session.scalars(
        sa.select(SignoffRequest)
        .join(PackageApplication, PackageApplication.id == SignoffRequest.package_application_id)
        .where(
            SignoffRequest.package_id == package.id,
            SignoffRequest.state == signoff_rules.REVOKED,
            SignoffRequest.handed_at.is_not(None),
            still_asked(),
        )
        .order_by(SignoffRequest.id)
    ).all()
    returned: dict[str, list[str]] = {}
    for request in handed:
        if absence_rules.away_until(absences, request.signer, now) is not None:
            continue
        place = deputies_place(request, request.signer)
        deputies = session.execute(
            sa.select(SignoffRequest.signer, SignoffRequest.state).where(place)
        ).all()
        if any(state == signoff_rules.SIGNED for _, state in deputies):
            continue
        request.state, request.handed_at, request.closed_at = signoff_rules.PENDING, None, None
        request.link_id = None
        session.execute(
            sa.update(SignoffRequest)
            .where(place, SignoffRequest.state == signoff_rules.PENDING)
            .values(state=signoff_rules.REVOKED, closed_at=now)
            .execution_options(synchronize_session=False)
        )
        got = returned.setdefault(request.signer, [])
        got.extend(d for d, _ in deputies if d not in got)
    session.flush()
    for person, dropped in sorted(returned.items()):
        audit.record_package_event(
            session,
            package,
            action="signoff.taken_back",
            actor=audit.SYSTEM,
            subject=f"{person} is back: open sign-off requests returned from their deputies",
            now=now,
            details={"person": person, "deputies": dropped},
        )
    return returned
