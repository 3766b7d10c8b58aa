"""Absences: when a person is away, and who signs in their place meanwhile."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.domain.errors import ValidationFailed

MAX_NOTE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Absence:
    """Away from `starts_at` (included) until `ends_at` (excluded)."""

    person: str
    starts_at: datetime
    ends_at: datetime

    def in_force(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def check_interval(starts_at: datetime, ends_at: datetime, note: str) -> None:
    if ends_at <= starts_at:
        raise ValidationFailed("an absence must end after it starts")
    if len(note) > MAX_NOTE_CHARS:
        raise ValidationFailed(f"the note is limited to {MAX_NOTE_CHARS} characters")


def away_until(absences: Iterable[Absence], person: str, now: datetime) -> datetime | None:
    """When the person's absence in force at `now` ends (the latest, if several overlap);
    None when they are not away."""
    ends = [a.ends_at for a in absences if a.person == person and a.in_force(now)]
    return max(ends, default=None)


def boundaries(absences: Iterable[Absence], now: datetime) -> list[datetime]:
    """Every instant after `now` at which someone leaves or comes back."""
    return [m for a in absences for m in (a.starts_at, a.ends_at) if m > now]
