"""Freeze windows and business blackouts: when releases must wait, and to whom that applies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo

# ISO 8601 durations as calendars write them (P1D, PT4H, P1DT12H, P2W): no years or months,
# whose length depends on where they start.
_DURATION_RE = re.compile(r"P(?:(\d{1,4})W)?(?:(\d{1,4})D)?(?:T(?:(\d{1,4})H)?(?:(\d{1,4})M)?)?")
# Longer than a year is not a freeze but a halt; refusing it keeps every occurrence bounded.
MAX_DURATION = timedelta(days=366)
CALENDAR = "freeze calendar"


def parse_duration(text: str) -> timedelta | None:
    """The duration `text` names, or None when it is not one this calendar accepts."""
    found = _DURATION_RE.fullmatch(text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        return None
    weeks, days, hours, minutes = (int(g or 0) for g in found.groups())
    length = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    return length if timedelta(0) < length <= MAX_DURATION else None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One stretch of time a window is in force: [starts, ends)."""

    starts: datetime
    ends: datetime

    def overlaps(self, starts: datetime, ends: datetime) -> bool:
        return self.starts < ends and starts < self.ends


class Schedule(Protocol):
    """When a window is in force. Recurring schedules live outside the domain (they need a
    recurrence library); the gate asks only these three questions, so an endless rule is never
    expanded."""

    @property
    def zone(self) -> tzinfo:
        """The time zone whose calendar days a planned release date is read in."""

    def in_force(self, at: datetime) -> Occurrence | None:
        """The occurrence covering `at`, run together with those that follow without a gap."""

    def next_start(self, after: datetime) -> datetime | None:
        """The first start strictly after `after`."""

    def overlapping(self, starts: datetime, ends: datetime) -> Occurrence | None:
        """The first occurrence overlapping [starts, ends)."""


@dataclass(frozen=True, slots=True)
class Fixed:
    """A window given by its start and end."""

    starts: datetime
    ends: datetime

    @property
    def zone(self) -> tzinfo:
        offset = self.starts.tzinfo
        assert offset is not None  # the linter requires an offset
        return offset

    @property
    def _occurrence(self) -> Occurrence:
        return Occurrence(self.starts.astimezone(UTC), self.ends.astimezone(UTC))

    def in_force(self, at: datetime) -> Occurrence | None:
        return self._occurrence if self.starts <= at < self.ends else None

    def next_start(self, after: datetime) -> datetime | None:
        return self._occurrence.starts if after < self.starts else None

    def overlapping(self, starts: datetime, ends: datetime) -> Occurrence | None:
        found = self._occurrence
        return found if found.overlaps(starts, ends) else None


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window as written: `starts`/`ends`, or an RFC 5545 `rrule` with `duration` and
    `timezone`; `environments` and `applications` empty means it applies to everything."""

    id: str
    title: str
    reason: str
    starts: datetime | None = None
    ends: datetime | None = None
    rrule: str = ""
    duration: str = ""
    timezone: str = ""
    environments: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()

    @property
    def recurring(self) -> bool:
        return bool(self.rrule)

    def to_canonical(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "title": self.title, "reason": self.reason}
        if self.starts is not None and self.ends is not None:
            doc["starts"] = self.starts.isoformat()
            doc["ends"] = self.ends.isoformat()
        else:
            doc.update(rrule=self.rrule, duration=self.duration, timezone=self.timezone)
        scope = {
            name: list(values)
            for name, values in (
                ("environments", self.environments),
                ("applications", self.applications),
            )
            if values
        }
        if scope:
            doc["applies_to"] = scope
        return doc

    @classmethod
    def from_canonical(cls, doc: dict[str, Any]) -> WindowSpec:
        scope = doc.get("applies_to", {})
        return cls(
            id=doc["id"],
            title=doc["title"],
            reason=doc["reason"],
            starts=datetime.fromisoformat(doc["starts"]) if "starts" in doc else None,
            ends=datetime.fromisoformat(doc["ends"]) if "ends" in doc else None,
            rrule=doc.get("rrule", ""),
            duration=doc.get("duration", ""),
            timezone=doc.get("timezone", ""),
            environments=tuple(scope.get("environments", ())),
            applications=tuple(scope.get("applications", ())),
        )


@dataclass(frozen=True, slots=True)
class Calendar:
    """One version of the freeze calendar file."""

    version: int
    reviewers: tuple[str, ...]
    windows: tuple[WindowSpec, ...]
    schema: int = 1

    def to_canonical(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "kind": "freezes",
            "version": self.version,
            "governance": {"reviewers": list(self.reviewers)},
            "freezes": [w.to_canonical() for w in self.windows],
        }

    @classmethod
    def from_canonical(cls, doc: dict[str, Any]) -> Calendar:
        return cls(
            version=doc["version"],
            reviewers=tuple(doc["governance"]["reviewers"]),
            windows=tuple(WindowSpec.from_canonical(w) for w in doc["freezes"]),
            schema=doc["schema"],
        )


def window_problems(spec: WindowSpec) -> list[tuple[str, str]]:
    """Cross-field rules of one window: (field, message) per violation."""
    found: list[tuple[str, str]] = []
    if spec.starts is not None and spec.ends is not None and spec.ends <= spec.starts:
        found.append(("ends", f"ends {spec.ends.isoformat()} is not after starts"))
    if spec.timezone:
        try:
            ZoneInfo(spec.timezone)
        except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            found.append(("timezone", f"{spec.timezone!r} is not a known time zone"))
    if spec.duration and parse_duration(spec.duration) is None:
        found.append(
            (
                "duration",
                f"{spec.duration!r} is not an ISO 8601 duration of weeks, days, hours and "
                "minutes (P1D, PT4H, P1DT12H) up to 366 days",
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Window:
    """A window the gate applies: the calendar's, or an application's blackout (`owner`)."""

    spec: WindowSpec
    schedule: Schedule
    owner: str = CALENDAR

    def applies(self, environment: str, applications: tuple[str, ...]) -> bool:
        spec = self.spec
        if spec.environments and environment not in spec.environments:
            return False
        return not spec.applications or bool(set(spec.applications) & set(applications))

    @property
    def label(self) -> str:
        kind = "freeze window" if self.owner == CALENDAR else f"{self.owner} blackout"
        return f"{kind} {self.spec.id!r} ({self.spec.title})"


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants a calendar day spans in `zone` (23 or 25 hours across a DST change)."""
    starts = datetime.combine(day, time(), zone)
    ends = datetime.combine(day + timedelta(days=1), time(), zone)
    return starts, ends
