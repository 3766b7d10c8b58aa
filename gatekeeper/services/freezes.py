"""The freeze calendar: versions synced and approved like checklists, and the windows the gate
applies (the newest approved calendar's, and each pinned checklist's blackouts)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.checklist_format.recurrence import schedule_of
from gatekeeper.db.models import FreezeCalendarVersion
from gatekeeper.domain import freeze, governance
from gatekeeper.domain.checklist import Checklist, canonical_json, content_digest
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound, PermissionDenied, ValidationFailed
from gatekeeper.services import audit

SUBJECT = "freeze calendar"


@dataclass(frozen=True)
class CalendarSync:
    """What syncing the calendar file did (or would do): created, unchanged, or a conflict."""

    version: int
    status: str
    path: str
    error: str | None = None


def plan_sync(session: Session, calendar: freeze.Calendar, path: str) -> CalendarSync:
    """Whether this calendar file is a new version, the stored one, or a conflict; versions only
    go up and a stored version never changes, as for checklists."""
    stored = _newest(session)
    digest = content_digest(calendar.to_canonical())
    if stored is None or calendar.version > stored.version:
        return CalendarSync(calendar.version, "created", path)
    if calendar.version < stored.version:
        error = (
            f"{path}: version {calendar.version} of the freeze calendar is lower than the stored "
            f"version {stored.version}; versions only go up"
        )
    elif digest != stored.sha256:
        error = (
            f"{path}: freeze calendar version {calendar.version} is already stored with "
            f"different content; bump `version` to {calendar.version + 1}"
        )
    else:
        return CalendarSync(calendar.version, "unchanged", path)
    return CalendarSync(calendar.version, "conflict", path, error)


def store_version(
    session: Session,
    calendar: freeze.Calendar,
    path: str,
    *,
    author: str | None,
    clock: Clock,
) -> FreezeCalendarVersion:
    """Store a new calendar version, pending review; a pending one nobody reviewed is superseded."""
    now = clock.now()
    session.execute(
        sa.update(FreezeCalendarVersion)
        .where(FreezeCalendarVersion.state == governance.PENDING_REVIEW)
        .values(
            state=governance.next_version_state(governance.PENDING_REVIEW, governance.SUPERSEDE),
            decided_at=now,
        )
    )
    doc = calendar.to_canonical()
    stored = FreezeCalendarVersion(
        version=calendar.version,
        sha256=content_digest(doc),
        content=canonical_json(doc),
        source_yaml=Path(path).read_text(encoding="utf-8"),
        source_path=path,
        author=author,
        state=governance.PENDING_REVIEW,
        synced_at=now,
    )
    session.add(stored)
    audit.record(
        session,
        action="freezes.synced",
        actor=author or audit.SYSTEM,
        subject=f"{SUBJECT} v{calendar.version}",
        now=now,
        details={"sha256": stored.sha256, "path": path, "state": stored.state},
    )
    return stored


def _newest(session: Session, *, state: str | None = None) -> FreezeCalendarVersion | None:
    query = sa.select(FreezeCalendarVersion).order_by(FreezeCalendarVersion.version.desc())
    if state is not None:
        query = query.where(FreezeCalendarVersion.state == state)
    return session.scalars(query.limit(1)).first()


def versions(session: Session) -> list[FreezeCalendarVersion]:
    return list(
        session.scalars(sa.select(FreezeCalendarVersion).order_by(FreezeCalendarVersion.version))
    )


def calendar_of(stored: FreezeCalendarVersion) -> freeze.Calendar:
    return _parse(stored.content)


@functools.lru_cache(maxsize=64)
def _parse(content: str) -> freeze.Calendar:
    # Versions are immutable: a parsed calendar is reused across requests.
    return freeze.Calendar.from_canonical(json.loads(content))


def review_calendar(
    session: Session,
    *,
    version: int,
    action: str,
    reviewer: str,
    notes: str = "",
    clock: Clock,
) -> FreezeCalendarVersion:
    """A reviewer named in the calendar's governance.reviewers approves a version, or sends it
    back; never the person who synced it."""
    stored = session.scalar(
        sa.select(FreezeCalendarVersion).where(FreezeCalendarVersion.version == version)
    )
    if stored is None:
        raise NotFound(f"no freeze calendar version {version} has been synced")
    if action not in (governance.APPROVE, governance.REQUEST_CHANGES):
        raise ValidationFailed(f"unknown review action {action!r}")
    if action == governance.REQUEST_CHANGES and not notes.strip():
        raise ValidationFailed("say what needs to change (notes) when requesting changes")
    reviewer = reviewer.strip().lower()
    calendar = calendar_of(stored)
    if reviewer not in calendar.reviewers:
        raise PermissionDenied(
            f"{reviewer} is not a reviewer of the freeze calendar "
            f"(governance.reviewers: {', '.join(calendar.reviewers)})"
        )
    if stored.author is not None and reviewer == stored.author:
        raise PermissionDenied("the author of a freeze calendar version cannot approve it")
    now = clock.now()
    stored.state = governance.next_version_state(stored.state, action)
    stored.decided_at, stored.reviewed_by, stored.review_notes = now, reviewer, notes.strip()
    audit.record(
        session,
        action=f"freezes.{stored.state}",
        actor=reviewer,
        subject=f"{SUBJECT} v{version}",
        now=now,
        details={"sha256": stored.sha256, "state": stored.state, "notes": stored.review_notes},
    )
    return stored


def approved_calendar(session: Session) -> freeze.Calendar | None:
    """The newest approved calendar version, in one query: what the gate applies."""
    stored = _newest(session, state=governance.APPROVED)
    return calendar_of(stored) if stored is not None else None


@functools.lru_cache(maxsize=1024)
def _window(spec: freeze.WindowSpec, owner: str) -> freeze.Window:
    # Specs are immutable values: each window's rule is built once per process, and its
    # occurrences cached by dateutil.
    if owner != freeze.CALENDAR:
        spec = replace(spec, applications=(owner,))
    return freeze.Window(spec, schedule_of(spec), owner)


def gate_windows(
    calendar: freeze.Calendar | None, checklists: Iterable[Checklist | None]
) -> tuple[freeze.Window, ...]:
    """The calendar's windows, and the blackouts of each checklist (its application's only)."""
    found = [_window(spec, freeze.CALENDAR) for spec in calendar.windows] if calendar else []
    for checklist in checklists:
        if checklist is not None:
            found.extend(
                _window(spec, checklist.application) for spec in checklist.user_validation.blackouts
            )
    return tuple(found)
