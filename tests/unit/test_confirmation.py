"""Post-release confirmation: its window at the exact boundaries, the outcome from the answers,
and the gate answer of a released package moving when the window closes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from gatekeeper.domain import confirmation as rules
from gatekeeper.domain import gate
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import Checklist, ConfirmAfterRelease, UserValidation
from gatekeeper.domain.gate import Release, evaluate, stable_until
from tests.unit.test_gate import APP, DANA, KIM, LEE, NOW, all_signed, checklist, gate_input
from tests.unit.test_gate import pinned as pin

TICK = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
RELEASED_AT = NOW


def with_confirm(cl: Checklist, after: int = 24, window: int = 72) -> Checklist:
    uv = cl.user_validation
    return replace(
        cl,
        user_validation=UserValidation(
            uv.key_users, uv.scenarios, uv.quorum, ConfirmAfterRelease(after, window)
        ),
    )


def released(
    *pinned: gate.PinnedApplication,
    answers: Iterable[tuple[str, str, str]] = (),
    now: datetime = RELEASED_AT,
) -> gate.GateInput:
    gi = gate_input(tuple(pinned), all_signed())
    return replace(
        gi,
        state=lifecycle.RELEASED,
        release=Release(RELEASED_AT, "rm@example.com", "sha256:x"),
        confirmations=tuple(answers),
        now=now,
    )


def test_the_window_opens_after_hours_and_lasts_window_hours() -> None:
    window = rules.window_of(APP, with_confirm(checklist(), 24, 72), RELEASED_AT)
    assert window is not None
    assert window.opens_at == RELEASED_AT + 24 * HOUR
    assert window.closes_at == RELEASED_AT + 96 * HOUR
    assert window.remind_at == window.closes_at - 24 * HOUR
    assert window.key_users == (DANA,)


def test_a_short_window_reminds_halfway() -> None:
    window = rules.window_of(APP, with_confirm(checklist(), 2, 4), RELEASED_AT)
    assert window is not None
    assert window.remind_at == RELEASED_AT + 4 * HOUR


def test_after_hours_zero_asks_nobody() -> None:
    assert rules.window_of(APP, with_confirm(checklist(), 0, 72), RELEASED_AT) is None
    assert rules.outcome([], {}, NOW) is None


def test_defaults_are_24_and_72_hours() -> None:
    assert checklist().user_validation.confirm_after_release == ConfirmAfterRelease(24, 72)


@pytest.mark.parametrize(
    ("answers", "offset", "expected"),
    [
        ({}, 96 * HOUR - TICK, None),
        ({}, 96 * HOUR, rules.UNCONFIRMED),
        ({(APP, DANA): rules.WORKS}, 96 * HOUR - TICK, None),
        ({(APP, DANA): rules.WORKS, (APP, LEE): rules.WORKS}, 25 * HOUR, rules.CONFIRMED),
        ({(APP, LEE): rules.PROBLEM}, 25 * HOUR, rules.PROBLEMS_REPORTED),
        ({(APP, LEE): rules.PROBLEM}, 200 * HOUR, rules.PROBLEMS_REPORTED),
    ],
)
def test_the_outcome_from_the_answers_at_the_exact_boundary(
    answers: dict[tuple[str, str], str], offset: timedelta, expected: str | None
) -> None:
    window = rules.window_of(APP, with_confirm(checklist(key_users=(DANA, LEE))), RELEASED_AT)
    assert window is not None
    found = rules.outcome([window], answers, RELEASED_AT + offset)
    assert found is not None
    assert found.state == expected


def test_unconfirmed_names_who_did_not_answer() -> None:
    window = rules.window_of(APP, with_confirm(checklist(key_users=(DANA, LEE))), RELEASED_AT)
    assert window is not None
    found = rules.outcome([window], {(APP, DANA): rules.WORKS}, window.closes_at)
    assert found is not None
    assert found.to_dict() == {
        "outcome": rules.UNCONFIRMED,
        "closes_at": window.closes_at.isoformat(),
        "waiting_on": [LEE],
        "problems_reported_by": [],
    }


def test_a_released_gate_carries_the_outcome_and_moves_when_the_window_closes() -> None:
    first = pin(with_confirm(checklist()))
    other = pin(with_confirm(checklist("ledger", key_users=(KIM,)), 24, 24), application="ledger")
    answers = [(APP, DANA, rules.WORKS)]
    gi = released(first, other, answers=answers, now=RELEASED_AT + 30 * HOUR)
    result = evaluate(gi)
    assert result.outcome is None
    assert result.to_dict()["outcome"] is None
    assert result.to_dict()["confirmation"]["waiting_on"] == [KIM]
    closes = RELEASED_AT + 96 * HOUR  # the later of the two windows
    # The ledger window closes first (48 h); it does not decide alone.
    assert stable_until(gi) == RELEASED_AT + 48 * HOUR
    at_ledger_close = replace(gi, now=RELEASED_AT + 48 * HOUR)
    assert evaluate(at_ledger_close).outcome is None
    assert stable_until(at_ledger_close) == closes
    assert evaluate(replace(gi, now=closes - TICK)).outcome is None
    closed = replace(gi, now=closes)
    assert evaluate(closed).outcome == rules.UNCONFIRMED
    assert evaluate(closed).to_dict()["confirmation"]["waiting_on"] == [KIM]
    assert stable_until(closed) is None


def test_the_outcome_is_not_in_the_digest_a_release_was_checked_with() -> None:
    gi = released(pin(with_confirm(checklist())), now=RELEASED_AT + 30 * HOUR)
    answered = replace(gi, confirmations=((APP, DANA, rules.WORKS),))
    assert evaluate(answered).outcome == rules.CONFIRMED
    assert evaluate(answered).digest == evaluate(gi).digest


def test_no_outcome_before_release_or_without_checklist() -> None:
    gi = gate_input((pin(with_confirm(checklist())),), all_signed())
    assert evaluate(gi).confirmation is None
    assert evaluate(gi).to_dict()["confirmation"] is None
    assert evaluate(released(pin(None, checklist=None))).confirmation is None
    no_release = replace(released(pin(with_confirm(checklist()))), release=None)
    assert evaluate(no_release).confirmation is None


def test_the_defaults_stay_out_of_the_canonical_content() -> None:
    plain = checklist()
    assert "confirm_after_release" not in plain.to_canonical()["user_validation"]
    custom = with_confirm(plain, 0, 12)
    doc = custom.to_canonical()
    assert doc["user_validation"]["confirm_after_release"] == {"after_hours": 0, "window_hours": 12}
    assert Checklist.from_canonical(doc) == custom
