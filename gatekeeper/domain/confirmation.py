"""Post-release confirmation: when key users are asked "still working after go-live?", and
the outcome of a released package from their answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gatekeeper.domain.checklist import Checklist

WORKS = "works"
PROBLEM = "problem"
ANSWERS = (WORKS, PROBLEM)

CONFIRMED = "confirmed"
PROBLEMS_REPORTED = "problems_reported"
UNCONFIRMED = "unconfirmed"
OUTCOMES = (CONFIRMED, PROBLEMS_REPORTED, UNCONFIRMED)

# The reminder goes out this long before the window closes (or halfway, for a short window).
REMINDER_LEAD = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Window:
    """When one application's key users are asked, reminded, and when answering ends."""

    application: str
    key_users: tuple[str, ...]
    opens_at: datetime
    closes_at: datetime

    @property
    def remind_at(self) -> datetime:
        return self.closes_at - min(REMINDER_LEAD, (self.closes_at - self.opens_at) / 2)


def window_of(application: str, checklist: Checklist, released_at: datetime) -> Window | None:
    """The confirmation window of one released application; None when its checklist asks
    nobody (`after_hours: 0`)."""
    confirm = checklist.user_validation.confirm_after_release
    if not confirm.enabled:
        return None
    opens_at = released_at + timedelta(hours=confirm.after_hours)
    return Window(
        application,
        checklist.user_validation.emails,
        opens_at,
        opens_at + timedelta(hours=confirm.window_hours),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the key users said: `state` is None while answers may still come."""

    state: str | None
    closes_at: datetime
    waiting_on: tuple[str, ...]  # who has not answered (named when unconfirmed)
    problems: tuple[str, ...]  # who reported a problem

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.state,
            "closes_at": self.closes_at.isoformat(),
            "waiting_on": list(self.waiting_on),
            "problems_reported_by": list(self.problems),
        }


def outcome(
    windows: Iterable[Window], answers: Mapping[tuple[str, str], str], now: datetime
) -> Outcome | None:
    """The package's outcome from every application's window and the answers given, keyed
    (application, key user). A problem decides at once; "confirmed" needs every key user of
    every application; "unconfirmed" comes when the last window closes with answers missing.
    None when no application asks for confirmation."""
    windows = tuple(windows)
    if not windows:
        return None
    closes_at = max(w.closes_at for w in windows)
    expected = [(w.application, user) for w in windows for user in w.key_users]
    problems = tuple(sorted({u for (a, u) in expected if answers.get((a, u)) == PROBLEM}))
    waiting = tuple(sorted({u for (a, u) in expected if (a, u) not in answers}))
    if problems:
        state: str | None = PROBLEMS_REPORTED
    elif not waiting:
        state = CONFIRMED
    elif now >= closes_at:
        state = UNCONFIRMED
    else:
        state = None
    return Outcome(state, closes_at, waiting, problems)
