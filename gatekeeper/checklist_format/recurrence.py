"""What a window's RFC 5545 `rrule` means: python-dateutil's rrule, asked only about one moment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from gatekeeper.domain import freeze

# Occurrences count from here, at midnight in the window's time zone: a rule without BYHOUR
# starts at 00:00 local, and a WEEKLY rule without BYDAY on a Wednesday.
ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)
# A freeze recurs at most daily: finer rules would make every gate walk hours of occurrences.
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_FREQ_RE = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")
# Occurrences run together to say when a stretch of them ends (the last 3 business days of a
# month are one blackout); bounded so that a rule covering all time cannot loop forever.
_MAX_RUN = 400


class RuleInvalid(ValueError):
    """A `rrule` this calendar cannot use; the message says why."""


def rule_of(text: str, zone: tzinfo) -> rrule:
    """The recurrence `text` names, from the anchor in `zone`; RuleInvalid when unusable."""
    if ":" in text or "\n" in text:
        raise RuleInvalid("give the rule's parts only (FREQ=…;BYDAY=…), without RRULE: or DTSTART")
    frequency = _FREQ_RE.search(text.upper())
    if frequency is None:
        raise RuleInvalid("a rule starts with its frequency, FREQ=DAILY|WEEKLY|MONTHLY|YEARLY")
    if frequency.group(1) not in FREQUENCIES:
        raise RuleInvalid(
            f"FREQ={frequency.group(1)} is too frequent; use {', '.join(FREQUENCIES)}"
        )
    try:
        parsed = rrulestr(text, dtstart=ANCHOR.replace(tzinfo=zone), cache=True)
    except (ValueError, TypeError) as exc:  # dateutil's words for a rule it cannot read
        raise RuleInvalid(str(exc)) from None
    if not isinstance(parsed, rrule) or parsed.after(ANCHOR.replace(tzinfo=zone), inc=True) is None:
        raise RuleInvalid("the rule has no occurrence")
    return parsed


@dataclass(frozen=True, eq=False)
class Recurring:
    """A recurring window: each occurrence lasts `duration` of wall-clock time in `zone`, so a
    day-long blackout is 23 or 25 hours across a daylight-saving change."""

    rule: rrule
    duration: timedelta
    zone: ZoneInfo

    def _ends(self, starts: datetime) -> datetime:
        # Aware arithmetic on the same tzinfo is wall-clock arithmetic: P1D is midnight to midnight.
        return (starts + self.duration).astimezone(UTC)

    def in_force(self, at: datetime) -> freeze.Occurrence | None:
        starts = self.rule.before(at, inc=True)
        if starts is None or at >= self._ends(starts):
            return None
        first, last, ends = starts, starts, self._ends(starts)
        for _ in range(_MAX_RUN):
            earlier = self.rule.before(first)
            if earlier is None or self._ends(earlier) < first:
                break
            first = earlier
        for _ in range(_MAX_RUN):
            later = self.rule.after(last)
            if later is None or later > ends:
                break
            last, ends = later, max(ends, self._ends(later))
        return freeze.Occurrence(first.astimezone(UTC), ends)

    def next_start(self, after: datetime) -> datetime | None:
        found = self.rule.after(after)
        return found.astimezone(UTC) if found is not None else None

    def overlapping(self, starts: datetime, ends: datetime) -> freeze.Occurrence | None:
        earlier = self.rule.before(starts)
        if earlier is not None and self._ends(earlier) > starts:
            return freeze.Occurrence(earlier.astimezone(UTC), self._ends(earlier))
        found = self.rule.after(starts, inc=True)
        if found is not None and found < ends:
            return freeze.Occurrence(found.astimezone(UTC), self._ends(found))
        return None


def schedule_of(spec: freeze.WindowSpec) -> freeze.Schedule:
    """The schedule of a window that passed the linter."""
    if spec.starts is not None and spec.ends is not None:
        return freeze.Fixed(spec.starts, spec.ends)
    zone = ZoneInfo(spec.timezone)
    duration = freeze.parse_duration(spec.duration)
    assert duration is not None  # the linter checked it
    return Recurring(rule_of(spec.rrule, zone), duration, zone)
