"""Freeze windows and blackouts in the gate: FREEZE_WINDOW, FREEZE_AHEAD, and the moments at
which the clock alone moves them (to the microsecond)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gatekeeper.domain import freeze, gate
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.freeze import Fixed, Window, WindowSpec
from gatekeeper.domain.gate import evaluate, freeze_blockers, stable_until
from tests.unit.test_gate import APP, NOW, all_signed, checklist, gate_input, pinned

TICK = timedelta(microseconds=1)
PARIS_WINTER = timezone(timedelta(hours=1))


def window(
    starts: datetime,
    ends: datetime,
    *,
    owner: str = freeze.CALENDAR,
    environments: tuple[str, ...] = (),
    applications: tuple[str, ...] = (),
    window_id: str = "year-end",
) -> Window:
    spec = WindowSpec(
        window_id,
        "Year-end freeze",
        "holiday staffing",
        starts=starts,
        ends=ends,
        environments=environments,
        applications=applications,
    )
    return Window(spec, Fixed(starts, ends), owner)


def frozen(*windows: Window, **kw: object) -> gate.GateInput:
    return gate_input((pinned(),), all_signed(), freezes=windows, **kw)


# Durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("P1D", timedelta(days=1)),
        ("PT4H", timedelta(hours=4)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P2W", timedelta(weeks=2)),
        ("PT90M", timedelta(minutes=90)),
    ],
)
def test_durations_as_calendars_write_them(text: str, length: timedelta) -> None:
    assert freeze.parse_duration(text) == length


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1D", "P1M", "P1Y", "P0D", "P400D"])
def test_durations_refused(text: str) -> None:
    assert freeze.parse_duration(text) is None


# Window rules and shapes -------------------------------------------------------------------------


def test_cross_field_rules_name_the_field() -> None:
    at = datetime(2026, 12, 18, 18, tzinfo=PARIS_WINTER)
    backwards = WindowSpec("w", "W", "r", starts=at, ends=at - timedelta(hours=1))
    assert [f for f, _ in freeze.window_problems(backwards)] == ["ends"]
    equal = WindowSpec("w", "W", "r", starts=at, ends=at)
    assert [f for f, _ in freeze.window_problems(equal)] == ["ends"]
    odd = WindowSpec("w", "W", "r", rrule="FREQ=DAILY", duration="P1M", timezone="Mars/Olympus")
    assert [f for f, _ in freeze.window_problems(odd)] == ["timezone", "duration"]
    fine = WindowSpec("w", "W", "r", rrule="FREQ=DAILY", duration="P1D", timezone="Europe/Paris")
    assert freeze.window_problems(fine) == []
    assert fine.recurring
    assert not equal.recurring


def test_windows_and_calendars_survive_their_canonical_form() -> None:
    fixed = window(
        datetime(2026, 12, 18, 18, tzinfo=PARIS_WINTER),
        datetime(2027, 1, 4, 8, tzinfo=PARIS_WINTER),
        environments=("production",),
        applications=("payments-api",),
    ).spec
    recurring = WindowSpec(
        "month-end", "Month end", "close", rrule="FREQ=MONTHLY", duration="P1D", timezone="UTC"
    )
    calendar = freeze.Calendar(3, ("board@example.com",), (fixed, recurring))
    doc = calendar.to_canonical()
    assert doc["kind"] == "freezes"
    assert "applies_to" not in doc["freezes"][1]
    assert freeze.Calendar.from_canonical(doc) == calendar


def test_a_checklist_without_blackouts_keeps_its_canonical_form() -> None:
    plain = checklist()
    assert "blackouts" not in plain.to_canonical()["user_validation"]
    spec = WindowSpec(
        "close", "Close", "books", rrule="FREQ=MONTHLY", duration="P1D", timezone="UTC"
    )
    with_blackout = replace(
        plain, user_validation=replace(plain.user_validation, blackouts=(spec,))
    )
    doc = with_blackout.to_canonical()
    assert doc["user_validation"]["blackouts"] == [spec.to_canonical()]
    assert Checklist.from_canonical(doc) == with_blackout


def test_scope_environments_and_applications() -> None:
    w = window(NOW, NOW + timedelta(hours=1), environments=("production",), applications=("a",))
    assert w.applies("production", ("a", "b"))
    assert not w.applies("staging", ("a",))
    assert not w.applies("production", ("b",))
    assert window(NOW, NOW + timedelta(hours=1)).applies("", ())


def test_a_calendar_day_in_a_zone() -> None:
    starts, ends = freeze.day_bounds(date(2026, 3, 29), PARIS_WINTER)
    assert (starts.astimezone(UTC), ends - starts) == (
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        timedelta(days=1),
    )


def test_fixed_schedules_answer_in_utc() -> None:
    starts = datetime(2026, 12, 18, 18, tzinfo=PARIS_WINTER)
    fixed = Fixed(starts, starts + timedelta(days=1))
    assert fixed.zone is PARIS_WINTER
    occurrence = fixed.in_force(starts)
    assert occurrence is not None
    assert occurrence.starts.tzinfo is UTC
    assert fixed.in_force(starts - TICK) is None
    assert fixed.in_force(starts + timedelta(days=1)) is None
    assert fixed.next_start(starts - TICK) == starts
    assert fixed.next_start(starts) is None
    assert fixed.overlapping(starts - timedelta(hours=1), starts) is None
    assert fixed.overlapping(starts - timedelta(hours=1), starts + TICK) == occurrence


# The gate ---------------------------------------------------------------------------------------


def test_a_window_in_force_blocks_naming_itself_its_reason_and_its_end() -> None:
    ends = NOW + timedelta(days=3)
    result = evaluate(frozen(window(NOW - timedelta(hours=1), ends)))
    assert result.status == gate.BLOCKED
    (blocker,) = result.blockers
    assert blocker.code == gate.FREEZE_WINDOW
    assert blocker.application is None
    assert "freeze window 'year-end' (Year-end freeze)" in blocker.message
    assert "holiday staffing" in blocker.message
    assert ends.isoformat(timespec="minutes") in blocker.message
    shown = blocker.to_dict()["freeze"]
    assert shown["id"] == "year-end"
    assert shown["ends"] == ends.isoformat()
    assert shown["reason"] == "holiday staffing"
    assert shown["owner"] == freeze.CALENDAR


def test_freeze_blockers_come_from_one_function() -> None:
    given = frozen(window(NOW, NOW + timedelta(hours=1)))
    assert [b for b in evaluate(given).blockers if b.code == gate.FREEZE_WINDOW] == (
        freeze_blockers(given)
    )


def test_a_blackout_names_its_application() -> None:
    blackout = window(NOW, NOW + timedelta(hours=1), owner=APP, applications=(APP,))
    (blocker,) = evaluate(frozen(blackout)).blockers
    assert blocker.application == APP
    assert f"{APP} blackout 'year-end'" in blocker.message


def test_a_window_elsewhere_does_not_block() -> None:
    staging = window(NOW, NOW + timedelta(hours=1), environments=("staging",))
    other = window(NOW, NOW + timedelta(hours=1), applications=("ledger",))
    given = frozen(staging, other, environment="production")
    assert evaluate(given).status == gate.OPEN
    assert stable_until(given) is None


@pytest.mark.parametrize("state", ["released", "cancelled"])
def test_released_and_cancelled_packages_are_not_held_by_freezes(state: str) -> None:
    given = frozen(window(NOW, NOW + timedelta(hours=1)), state=state, planned_for=NOW.date())
    result = evaluate(given)
    assert gate.FREEZE_WINDOW not in [b.code for b in result.blockers]
    assert result.warnings == ()


def test_a_draft_is_held_too() -> None:
    result = evaluate(frozen(window(NOW, NOW + timedelta(hours=1)), state="draft"))
    assert gate.FREEZE_WINDOW in [b.code for b in result.blockers]


def test_the_freeze_changes_the_digest() -> None:
    free = frozen()
    held = frozen(window(NOW, NOW + timedelta(hours=1)))
    assert evaluate(free).digest != evaluate(held).digest


def test_a_planned_date_in_a_window_warns_ahead() -> None:
    starts = datetime(2026, 12, 18, 18, tzinfo=PARIS_WINTER)
    given = frozen(window(starts, starts + timedelta(days=17)), planned_for=date(2026, 12, 21))
    result = evaluate(given)
    assert result.status == gate.OPEN
    (warning,) = result.warnings
    assert warning.code == gate.FREEZE_AHEAD
    assert "2026-12-21" in warning.message
    assert "holiday staffing" in warning.message
    assert warning.freeze is not None
    assert warning.freeze.starts == starts


def test_the_planned_day_is_read_in_the_windows_zone() -> None:
    # Starts at 00:00 in +01:00, which is still 21 December in UTC: the 21st is not in it.
    starts = datetime(2026, 12, 22, tzinfo=PARIS_WINTER)
    w = window(starts, starts + timedelta(days=1))
    assert evaluate(frozen(w, planned_for=date(2026, 12, 21))).warnings == ()
    assert len(evaluate(frozen(w, planned_for=date(2026, 12, 22))).warnings) == 1


def test_no_planned_date_no_warning() -> None:
    assert evaluate(frozen(window(NOW + timedelta(days=1), NOW + timedelta(days=2)))).warnings == ()


# Stability: the gate cache's basis -----------------------------------------------------------


def test_a_window_to_come_ends_stability_when_it_starts() -> None:
    starts = NOW + timedelta(hours=5)
    given = frozen(window(starts, starts + timedelta(hours=2)))
    assert stable_until(given) == starts
    assert evaluate(replace(given, now=starts - TICK)) == evaluate(given)
    assert evaluate(replace(given, now=starts)).status == gate.BLOCKED


def test_a_window_in_force_ends_stability_when_it_ends() -> None:
    ends = NOW + timedelta(hours=2)
    given = frozen(window(NOW - timedelta(hours=1), ends))
    assert stable_until(given) == ends
    assert evaluate(replace(given, now=ends - TICK)) == evaluate(given)
    assert evaluate(replace(given, now=ends)).status == gate.OPEN


def test_a_warning_ahead_ends_when_its_occurrence_has_passed() -> None:
    starts = NOW + timedelta(hours=1)
    ends = starts + timedelta(hours=3)
    given = frozen(window(starts, ends), planned_for=starts.date())
    assert stable_until(given) == starts
    during = replace(given, now=starts)
    assert stable_until(during) == ends
    assert len(evaluate(replace(given, now=ends - TICK)).warnings) == 1
    assert evaluate(replace(given, now=ends)).warnings == ()
    assert stable_until(replace(given, now=ends)) is None
