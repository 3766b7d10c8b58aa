"""The iCalendar feed of freezes, blackouts and planned releases, behind per-person secret keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from icalendar import Calendar, Event, vRecur
from sqlalchemy.orm import Session

from gatekeeper.checklist_format.recurrence import ANCHOR
from gatekeeper.db.models import CalendarKey, Package
from gatekeeper.domain import freeze
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import audit, checklists, freezes

PREFIX = "gkcal_"
# Longer keys are not keys of ours: refused before any hashing or query.
MAX_KEY_CHARS = 100
PRODUCT = "-//Gatekeeper//Freezes and releases//EN"
PLANNED = (lifecycle.DRAFT, lifecycle.IN_REVIEW)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyState:
    """What a person's calendar page shows: whether they have a feed key, and since when."""

    created_at: datetime | None


def key_state(session: Session, owner: str) -> KeyState:
    found = _active(session, owner)
    return KeyState(found.created_at if found else None)


def _active(session: Session, owner: str) -> CalendarKey | None:
    return session.scalar(
        sa.select(CalendarKey).where(CalendarKey.owner == owner, CalendarKey.revoked_at.is_(None))
    )


def create_key(session: Session, owner: str, *, clock: Clock) -> str:
    """A new secret feed key for `owner`, shown once; any key they had stops working."""
    revoke_key(session, owner, clock=clock, reason="replaced")
    key = PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    session.add(CalendarKey(owner=owner, key_hash=_hash(key), created_at=now))
    audit.record(
        session,
        action="calendar_key.created",
        actor=owner,
        subject=f"calendar feed of {owner}",
        now=now,
    )
    return key


def revoke_key(session: Session, owner: str, *, clock: Clock, reason: str = "revoked") -> bool:
    """Stop `owner`'s feed key from working; False when they had none."""
    found = _active(session, owner)
    if found is None:
        return False
    now = clock.now()
    found.revoked_at = now
    audit.record(
        session,
        action="calendar_key.revoked",
        actor=owner,
        subject=f"calendar feed of {owner}",
        now=now,
        details={"reason": reason},
    )
    return True


def _owner_of(session: Session, key: str) -> str:
    if not key.startswith(PREFIX) or len(key) > MAX_KEY_CHARS:
        raise NotFound("no such calendar")
    digest = _hash(key)
    found = session.scalar(
        sa.select(CalendarKey).where(
            CalendarKey.key_hash == digest, CalendarKey.revoked_at.is_(None)
        )
    )
    if found is None or not hmac.compare_digest(found.key_hash, digest):
        raise NotFound("no such calendar")
    return found.owner


def _window_event(window: freeze.Window, stamp: datetime) -> Event:
    spec = window.spec
    event = Event()
    event.add("uid", f"{spec.id}.{window.owner.replace(' ', '-')}@freezes.gatekeeper")
    event.add("dtstamp", stamp)
    kind = "Freeze" if window.owner == freeze.CALENDAR else f"Blackout of {window.owner}"
    event.add("summary", f"{kind}: {spec.title}")
    scope = [
        f"{name}: {', '.join(values)}"
        for name, values in (
            ("environments", spec.environments),
            ("applications", spec.applications),
        )
        if values
    ]
    event.add("description", "\n".join([spec.reason, *scope]))
    event.add("categories", ["freeze" if window.owner == freeze.CALENDAR else "blackout"])
    if spec.starts is not None and spec.ends is not None:
        event.add("dtstart", spec.starts)
        event.add("dtend", spec.ends)
    else:
        duration = freeze.parse_duration(spec.duration)
        assert duration is not None  # the linter checked it
        event.add("dtstart", ANCHOR.replace(tzinfo=window.schedule.zone))
        event.add("duration", duration)
        event.add("rrule", vRecur.from_ical(spec.rrule))
    return event


def feed(session: Session, key: str, *, clock: Clock) -> bytes:
    """The feed for the holder of `key` (NotFound for a wrong or revoked key): the approved
    freeze calendar, every application's blackouts and the planned releases (key, title, date),
    nothing more."""
    _owner_of(session, key)
    stamp = clock.now()
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Gatekeeper: freezes and releases")
    for window in freezes.gate_windows(
        freezes.approved_calendar(session), checklists.latest_approved_checklists(session)
    ):
        calendar.add_component(_window_event(window, stamp))
    for key_, title, day in session.execute(
        sa.select(Package.key, Package.title, Package.planned_for)
        .where(Package.planned_for.is_not(None), Package.state.in_(PLANNED))
        .order_by(Package.planned_for, Package.key)
    ):
        assert day is not None  # filtered by the query; narrows the type
        event = Event()
        event.add("uid", f"{key_}@releases.gatekeeper")
        event.add("dtstamp", stamp)
        event.add("summary", f"Release {key_}: {title}")
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
        event.add("categories", ["release"])
        calendar.add_component(event)
    calendar.add_missing_timezones()
    body: bytes = calendar.to_ical()
    return body


@dataclass(frozen=True)
class WindowRow:
    """A window as the calendar page lists it: in force now until when, or next from when."""

    window: freeze.Window
    in_force: freeze.Occurrence | None
    next_start: datetime | None


def overview(session: Session, *, now: datetime) -> tuple[int | None, list[WindowRow]]:
    """The approved calendar's version and every window in force or to come, with blackouts."""
    calendar = freezes.approved_calendar(session)
    rows = [
        WindowRow(w, w.schedule.in_force(now), w.schedule.next_start(now))
        for w in freezes.gate_windows(calendar, checklists.latest_approved_checklists(session))
    ]
    shown = [r for r in rows if r.in_force is not None or r.next_start is not None]
    return (calendar.version if calendar else None), shown
