"""The freeze calendar file and checklist blackouts as the linter reads them: recurrence by
python-dateutil, bad input as file:line:col."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.checklist_format.recurrence import RuleInvalid, rule_of, schedule_of
from gatekeeper.checklist_format.validator import load_checklist_file, parse_document
from gatekeeper.domain import freeze, gate
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.freeze import Calendar, Window, WindowSpec
from gatekeeper.domain.gate import evaluate, stable_until
from gatekeeper.services import demo_freezes
from tests.unit.test_gate import all_signed, gate_input, pinned

REPO = Path(__file__).resolve().parents[2]
PARIS = ZoneInfo("Europe/Paris")
TICK = timedelta(microseconds=1)
MONTH_END = WindowSpec(
    "month-end-close",
    "Month-end close",
    "Finance closes the books",
    rrule="FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1",
    duration="P1D",
    timezone="Europe/Paris",
)


def paris(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PARIS)  # type: ignore[misc]


# Recurrence --------------------------------------------------------------------------------------


def test_the_last_three_business_days_of_each_month() -> None:
    schedule = schedule_of(MONTH_END)
    # November 2026 ends on Monday 30th: Thursday 26, Friday 27 and Monday 30 are the close.
    found = schedule.in_force(paris(2026, 11, 26, 12))
    assert found is not None
    assert found.starts == paris(2026, 11, 26).astimezone(UTC)
    assert found.ends == paris(2026, 11, 28).astimezone(UTC), "Thursday and Friday run together"
    assert schedule.in_force(paris(2026, 11, 28, 12)) is None, "the weekend is not the close"
    assert schedule.next_start(paris(2026, 11, 28)) == paris(2026, 11, 30).astimezone(UTC)
    assert schedule.in_force(paris(2026, 11, 25, 23, 59)) is None
    assert schedule.next_start(paris(2026, 12, 1)) == paris(2026, 12, 29).astimezone(UTC)


def test_a_recurring_window_across_daylight_saving() -> None:
    # March 2026 ends on Tuesday 31st; the clocks go forward on Sunday 29th.
    schedule = schedule_of(MONTH_END)
    found = schedule.in_force(paris(2026, 3, 30, 9))
    assert found is not None
    # Friday 27 alone (the weekend between), then Monday 30 and Tuesday 31 run together.
    assert found.starts == datetime(2026, 3, 29, 22, tzinfo=UTC), "midnight in summer time"
    assert found.ends == datetime(2026, 3, 31, 22, tzinfo=UTC)
    friday = schedule.in_force(paris(2026, 3, 27, 9))
    assert friday is not None
    assert friday.starts == datetime(2026, 3, 26, 23, tzinfo=UTC), "midnight in winter time"
    assert friday.ends == datetime(2026, 3, 27, 23, tzinfo=UTC)
    daily = schedule_of(
        replace(MONTH_END, rrule="FREQ=DAILY;BYHOUR=9", duration="PT8H", timezone="Europe/Paris")
    )
    before, after = daily.in_force(paris(2026, 3, 28, 10)), daily.in_force(paris(2026, 3, 30, 10))
    assert before is not None
    assert after is not None
    # 09:00 local on both sides of the change.
    assert (before.starts.hour, after.starts.hour) == (8, 7)


def test_overlapping_finds_the_occurrence_on_a_day() -> None:
    schedule = schedule_of(MONTH_END)
    monday = freeze.day_bounds(date(2026, 11, 30), PARIS)
    found = schedule.overlapping(*monday)
    assert found is not None
    assert found.starts == monday[0].astimezone(UTC)
    assert schedule.overlapping(*freeze.day_bounds(date(2026, 11, 25), PARIS)) is None
    long = schedule_of(replace(MONTH_END, duration="P2D"))
    # Friday 27's two days reach into Saturday 28.
    found = long.overlapping(*freeze.day_bounds(date(2026, 11, 28), PARIS))
    assert found is not None
    assert found.starts == paris(2026, 11, 27).astimezone(UTC)


def test_an_ending_rule_has_no_next_start() -> None:
    schedule = schedule_of(replace(MONTH_END, rrule="FREQ=YEARLY;UNTIL=20211231T000000Z"))
    assert schedule.next_start(paris(2026, 1, 1)) is None
    assert schedule.overlapping(*freeze.day_bounds(date(2026, 1, 1), PARIS)) is None


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("RRULE:FREQ=DAILY", "without RRULE"),
        ("BYDAY=MO", "starts with its frequency"),
        ("FREQ=HOURLY", "too frequent"),
        ("FREQ=DAILY;BYDAY=XX", "XX"),
        ("FREQ=DAILY;UNTIL=20270101", "UTC"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
    ],
)
def test_rules_refused(rule: str, why: str) -> None:
    with pytest.raises(RuleInvalid, match=why):
        rule_of(rule, PARIS)


def test_the_gate_with_a_recurring_blackout_to_the_microsecond() -> None:
    blackout = Window(
        replace(MONTH_END, applications=("payments-api",)), schedule_of(MONTH_END), "payments-api"
    )
    starts = paris(2026, 11, 26).astimezone(UTC)
    ends = paris(2026, 11, 28).astimezone(UTC)
    given = gate_input((pinned(),), all_signed(), freezes=(blackout,), now=starts - timedelta(1))
    assert stable_until(given) == starts
    assert evaluate(replace(given, now=starts - TICK)) == evaluate(given)
    during = replace(given, now=starts)
    (blocker,) = evaluate(during).blockers
    assert blocker.code == gate.FREEZE_WINDOW
    assert blocker.application == "payments-api"
    assert blocker.freeze is not None
    assert blocker.freeze.ends == ends
    # Friday's occurrence starts inside the run: a boundary, where nothing changes but `since`.
    assert stable_until(during) == paris(2026, 11, 27).astimezone(UTC)
    friday = replace(given, now=paris(2026, 11, 27).astimezone(UTC))
    assert stable_until(friday) == ends
    assert evaluate(replace(given, now=ends - TICK)).status == gate.BLOCKED
    assert evaluate(replace(given, now=ends)).status == gate.OPEN


# The calendar file --------------------------------------------------------------------------------


def test_the_sample_calendar_parses() -> None:
    calendar = parse_document((REPO / "checklists" / "freezes.yaml").read_bytes(), "f.yaml")
    assert isinstance(calendar, Calendar)
    assert [w.id for w in calendar.windows] == ["year-end", "quarterly-audit"]
    assert calendar.windows[0].environments == ("production",)


def test_the_demo_ledger_declares_the_month_end_blackout() -> None:
    ledger = parse_document(demo_freezes.CHECKLIST.encode(), "general-ledger.yaml")
    assert not isinstance(ledger, Calendar)
    (blackout,) = ledger.user_validation.blackouts
    assert blackout.rrule == MONTH_END.rrule
    assert blackout.duration == "P1D"


def test_the_calendar_is_not_a_checklist(tmp_path: Path) -> None:
    with pytest.raises(ChecklistInvalid, match="freeze calendar, not a checklist"):
        load_checklist_file(REPO / "checklists" / "freezes.yaml")


CALENDAR = """\
schema: 1
kind: freezes
version: 2
governance:
  reviewers: [board@example.com]
freezes:
{windows}"""


def problems(windows: str, document: str = CALENDAR) -> list[str]:
    with pytest.raises(ChecklistInvalid) as caught:
        parse_document(document.format(windows=windows).encode(), "checklists/freezes.yaml")
    return [str(p) for p in caught.value.problems]


def test_an_unknown_window_shape() -> None:
    found = problems(
        "  - id: mixed\n"
        "    title: Mixed\n"
        "    reason: both shapes\n"
        '    starts: "2026-12-18T18:00:00+01:00"\n'
        "    rrule: FREQ=DAILY\n"
    )
    assert found == [
        "checklists/freezes.yaml:7:5: freezes[0]: unknown window shape: give starts and ends, "
        "or rrule, duration and timezone (found rrule, starts)"
    ]
    assert "unknown window shape" in problems("  - {id: none, title: None, reason: no times}\n")[0]


def test_a_bad_rrule_at_its_line_and_column() -> None:
    (found,) = problems(
        "  - id: weekly\n"
        "    title: Weekly\n"
        "    reason: r\n"
        "    rrule: FREQ=WEEKLY;BYDAY=FUNDAY\n"
        "    duration: P1D\n"
        "    timezone: Europe/Paris\n"
    )
    assert found.startswith("checklists/freezes.yaml:10:12: freezes[0].rrule: not a usable RFC")


def test_ends_before_starts_at_its_line_and_column() -> None:
    (found,) = problems(
        "  - id: backwards\n"
        "    title: Backwards\n"
        "    reason: r\n"
        "    starts: 2026-12-18T18:00:00+01:00\n"
        '    ends: "2026-12-18T17:00:00+01:00"\n'
    )
    assert found.startswith("checklists/freezes.yaml:11:11: freezes[0].ends: ends 2026-12-18T17")


def test_every_field_of_a_window_is_checked() -> None:
    found = problems(
        "  - id: Bad Id\n"
        "    title: T\n"
        "    reason: r\n"
        "    rrule: FREQ=DAILY\n"
        "    duration: P1M\n"
        "    timezone: Nowhere/City\n"
        "    applies_to: {environments: [production], teams: [a]}\n"
        "  - id: naive\n"
        "    title: T\n"
        "    reason: r\n"
        "    starts: 2026-12-18T18:00:00\n"
        "    ends: tomorrow\n"
        "  - id: naive\n"
        "    title: T\n"
        "    reason: r\n"
        "    starts: [1]\n"
        "    ends: 2027-01-01T00:00:00Z\n"
    )
    text = "\n".join(found)
    assert "freezes[0].id: 'Bad Id' is not a valid id" in text
    assert "freezes[0].applies_to.teams: unknown field 'teams'" in text
    assert "freezes[1].starts: '2026-12-18T18:00:00' has no UTC offset" in text
    assert "freezes[1].ends: 'tomorrow' is not an ISO 8601 date and time" in text
    assert "freezes[2].starts: expected a date and time" in text


def test_the_rest_of_a_window_is_checked_once_its_fields_read() -> None:
    found = problems(
        "  - id: odd\n"
        "    title: T\n"
        "    reason: r\n"
        "    rrule: FREQ=DAILY\n"
        "    duration: P1M\n"
        "    timezone: Nowhere/City\n"
        "  - id: twice\n"
        "    title: T\n"
        "    reason: r\n"
        "    rrule: FREQ=DAILY\n"
        "    duration: P1D\n"
        "    timezone: UTC\n"
        "  - id: twice\n"
        "    title: T\n"
        "    reason: r\n"
        "    rrule: FREQ=DAILY\n"
        "    duration: P1D\n"
        "    timezone: UTC\n"
        "    applies_to: {applications: [payments-api]}\n"
    )
    text = "\n".join(found)
    assert "freezes[0].timezone: 'Nowhere/City' is not a known time zone" in text
    assert "freezes[0].duration: 'P1M' is not an ISO 8601 duration" in text
    assert "checklists/freezes.yaml:19:9: freezes[2].id: duplicate window id 'twice'" in text


def test_the_calendar_document_itself() -> None:
    wrong_kind = "schema: 1\nkind: calendar\n"
    with pytest.raises(ChecklistInvalid, match="unknown kind 'calendar'"):
        parse_document(wrong_kind.encode(), "f.yaml")
    text = "\n".join(
        problems("", "schema: 2\nkind: freezes\nversion: x\ngovernance: {{}}\nfreezes: {{}}\n")
    )
    assert "unsupported schema 2" in text
    assert "version: must be a whole number" in text
    assert "governance: missing required field 'reviewers'" in text
    assert "freezes: expected a list" in text
    assert "missing required field 'freezes'" in problems("", "schema: 1\nkind: freezes\n")[-1]


def test_a_blackout_applies_to_its_own_application_only() -> None:
    text = demo_freezes.CHECKLIST
    widened = text.replace(
        "      timezone: Europe/Paris\n",
        "      timezone: Europe/Paris\n      applies_to: {applications: [payments-api]}\n",
    )
    with pytest.raises(ChecklistInvalid) as caught:
        parse_document(widened.encode(), "general-ledger.yaml")
    (problem,) = caught.value.problems
    assert "blackouts[0].applies_to.applications: unknown field" in str(problem)
    broken = text.replace("duration: P1D", "duration: one day")
    with pytest.raises(ChecklistInvalid, match=r"blackouts\[0\].duration"):
        parse_document(broken.encode(), "general-ledger.yaml")
