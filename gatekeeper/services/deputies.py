"""People away and their deputies: record and end absences, and keep every package's sign-off
requests with whoever can answer them now (the person, or their deputies while they are away)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from gatekeeper.db.models import Absence as AbsenceRow
from gatekeeper.db.models import Package, PackageApplication, SignoffLink, SignoffRequest
from gatekeeper.domain import absence as absence_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, NotFound, ValidationFailed
from gatekeeper.services import absences, audit, handover, packages
from gatekeeper.services.links import ACTIVE, retire_links
from gatekeeper.services.signoffs import REVOKED, LinkSettings, issue_links, open_link


@dataclass(frozen=True)
class Settled:
    """What one pass moved: people whose requests went to deputies, and people given theirs back."""

    handed: dict[str, list[str]]
    returned: dict[str, list[str]]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "handed_to_deputies": len(self.handed),
            "returned_from_deputies": len(self.returned),
        }


def normalized_email(value: str) -> str:
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized).lower()
    except EmailNotValidError:
        raise ValidationFailed(f"{value.strip()[:254]!r} is not a valid email address") from None


def _describe(row: AbsenceRow) -> dict[str, str]:
    return {
        "person": row.person,
        "from": row.starts_at.isoformat(),
        "until": row.ends_at.isoformat(),
        "note": row.note,
    }


def _lock_person(session: Session, person: str) -> None:
    """Serialise the absences of one person (two "I am away" posts of one link record one).
    Taken before any package lock and never while holding one, so it cannot deadlock with
    them; SQLite's write transactions are serial already."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(person.encode()).digest()[:8], "big", signed=True)
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def record_absence(
    session: Session,
    *,
    person: str,
    starts_at: datetime,
    ends_at: datetime,
    note: str,
    actor: str,
    clock: Clock,
    links: LinkSettings,
) -> AbsenceRow:
    """Record that `person` is away over [starts_at, ends_at); an absence already in force
    hands their open requests to their deputies at once (a later one, when it begins: the
    worker's pass)."""
    now = clock.now()
    email = normalized_email(person)
    _lock_person(session, email)
    note = note.strip()
    absence_rules.check_interval(starts_at, ends_at, note)
    if ends_at <= now:
        raise ValidationFailed("this absence is over already; record one that has not ended")
    row = AbsenceRow(
        person=email,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
        recorded_by=actor,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    settle(session, clock=clock, links=links, people=[email])
    audit.record(
        session,
        action="person.away",
        actor=actor,
        subject=f"{email} away until {ends_at.date().isoformat()}",
        now=now,
        details={"absence": row.id, **_describe(row)},
    )
    return row


def end_absence(
    session: Session, absence_id: int, *, actor: str, clock: Clock, links: LinkSettings
) -> AbsenceRow:
    """The person is back now (or, for an absence not begun, will not be away after all)."""
    now = clock.now()
    row = session.get(AbsenceRow, absence_id, with_for_update=True)
    if row is None:
        raise NotFound("no such absence")
    if row.ends_at <= now or row.ends_at <= row.starts_at:
        raise Conflict(f"this absence of {row.person} is over already")
    row.ends_at = max(row.starts_at, now)
    session.flush()
    settle(session, clock=clock, links=links, people=[row.person])
    audit.record(
        session,
        action="person.back",
        actor=actor,
        subject=f"{row.person} is back",
        now=now,
        details={"absence": row.id, **_describe(row)},
    )
    return row


def person_back(
    session: Session, person: str, *, actor: str, clock: Clock, links: LinkSettings
) -> list[AbsenceRow]:
    """End every absence of `person` in force now."""
    email = normalized_email(person)
    now = clock.now()
    current = session.scalars(
        sa.select(AbsenceRow)
        .where(AbsenceRow.person == email, AbsenceRow.starts_at <= now, AbsenceRow.ends_at > now)
        .order_by(AbsenceRow.id)
    ).all()
    if not current:
        raise Conflict(f"{email} is not recorded as away")
    return [end_absence(session, r.id, actor=actor, clock=clock, links=links) for r in current]


def list_absences(session: Session, *, now: datetime) -> list[AbsenceRow]:
    """Absences in force or to come, soonest first."""
    return list(
        session.scalars(
            sa.select(AbsenceRow)
            .where(AbsenceRow.ends_at > now, AbsenceRow.ends_at > AbsenceRow.starts_at)
            .order_by(AbsenceRow.starts_at, AbsenceRow.id)
        )
    )


def away_until(session: Session, person: str, now: datetime) -> datetime | None:
    return absence_rules.away_until(absences.ended_after(session, now), person, now)


def settle(
    session: Session,
    *,
    clock: Clock,
    links: LinkSettings,
    people: Collection[str] | None = None,
) -> Settled:
    """Hand the open requests of everyone away now to their deputies, and give back those of
    everyone returned (of `people` only, when given). Run when an absence is recorded or ended,
    and by every worker pass, which is what moves requests when an absence begins or ends on
    its own."""
    now = clock.now()
    known = absences.ended_after(session, now)
    away = sorted({a.person for a in known if a.in_force(now)})
    in_review = sa.and_(
        Package.id == SignoffRequest.package_id, Package.state == lifecycle.IN_REVIEW
    )
    to_hand = sa.and_(
        SignoffRequest.state == signoff_rules.PENDING,
        SignoffRequest.on_behalf_of.is_(None),
        SignoffRequest.signer.in_(away),
    )
    to_return = sa.and_(
        SignoffRequest.state == signoff_rules.REVOKED,
        SignoffRequest.handed_at.is_not(None),
        handover.still_asked(),
        SignoffRequest.signer.not_in(away),
    )
    query = (
        sa.select(SignoffRequest.package_id)
        .join(Package, in_review)
        .join(PackageApplication, PackageApplication.id == SignoffRequest.package_application_id)
        .where(sa.or_(to_hand, to_return))
        .distinct()
    )
    if people is not None:
        query = query.where(SignoffRequest.signer.in_(sorted(people)))
    settled = Settled({}, {})
    ids = sorted(session.scalars(query))
    # Every package locked first, in one order, before anything is written: a sign-off holds
    # its package's lock while it appends to the audit trail, so taking the audit lock and
    # then a package lock here could deadlock with it.
    newly_locked = [packages.lock_package(session, package_id) for package_id in ids]
    if any(newly_locked):
        session.expire_all()
    for package_id in ids:
        _settle_package(session, package_id, known, now, clock, links, settled)
    return settled


def _settle_package(
    session: Session,
    package_id: int,
    known: tuple[absence_rules.Absence, ...],
    now: datetime,
    clock: Clock,
    links: LinkSettings,
    settled: Settled,
) -> None:
    package = session.get(Package, package_id)
    if package is None or package.state != lifecycle.IN_REVIEW:
        return
    pending = session.scalars(
        sa.select(SignoffRequest)
        .where(
            SignoffRequest.package_id == package_id,
            SignoffRequest.state == signoff_rules.PENDING,
            SignoffRequest.on_behalf_of.is_(None),
        )
        .order_by(SignoffRequest.id)
    ).all()
    handed = handover.hand_over(session, package, pending, known, now)
    returned = handover.take_back(session, package, known, now)
    if handed:
        # Their own links die with a page of their own: "handed to your deputy".
        session.execute(
            sa.update(SignoffLink)
            .where(
                SignoffLink.package_id == package_id,
                SignoffLink.signer.in_(sorted(handed)),
                SignoffLink.state == ACTIVE,
            )
            .values(state=REVOKED, handed_at=now)
            .execution_options(synchronize_session=False)
        )
    dropped = sorted({d for got in returned.values() for d in got})
    if dropped:
        retire_links(
            session,
            SignoffLink,
            SignoffLink.package_id == package_id,
            SignoffLink.signer.in_(dropped),
            state=REVOKED,
        )
    asked = {*handed, *returned, *dropped, *(d for got in handed.values() for d in got)}
    if asked:
        issue_links(session, package, settings=links, clock=clock, signers=sorted(asked))
    for person, deputies in handed.items():
        settled.handed.setdefault(person, []).extend(deputies)
    for person, deputies in returned.items():
        settled.returned.setdefault(person, []).extend(deputies)


@dataclass(frozen=True)
class AwayOutcome:
    """What the away person is told after saying so from one of their links."""

    person: str
    until: datetime
    package_key: str
    deputies: list[str]


def away_from_link(
    session: Session,
    token: str,
    *,
    until: datetime,
    note: str,
    links: LinkSettings,
    clock: Clock,
) -> AwayOutcome:
    """The link's signer says they are away from now until `until`. The link must be one they
    could sign with; what it asked goes to their deputies, and the link dies with it."""
    now = clock.now()
    person = open_link(session, token, settings=links, clock=clock).link.signer
    _lock_person(session, person)
    # Read again under the lock: the link may have been used or handed meanwhile.
    session.expire_all()
    view = open_link(session, token, settings=links, clock=clock)
    if (current := away_until(session, person, now)) is not None:
        raise Conflict(f"you are already recorded as away until {current.date().isoformat()}")
    record_absence(
        session,
        person=person,
        starts_at=now,
        ends_at=until,
        note=note,
        actor=person,
        clock=clock,
        links=links,
    )
    deputies = sorted(
        session.scalars(
            sa.select(SignoffRequest.signer)
            .where(
                SignoffRequest.package_id == view.package.id,
                SignoffRequest.on_behalf_of == person,
                SignoffRequest.state == signoff_rules.PENDING,
            )
            .distinct()
        )
    )
    return AwayOutcome(person, until, view.package.key, deputies)
