"""Learning reviews and action items: every state against every action, due dates, the gate
warnings of overdue ones moving at the exact microsecond, and Markdown that escapes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from gatekeeper.domain import gate, learning
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.errors import Conflict, PermissionDenied, ValidationFailed
from gatekeeper.domain.gate import evaluate, stable_until
from tests.unit.test_gate import NOW, all_signed, gate_input, pinned

TICK = timedelta(microseconds=1)
TEAM = "payments-team@example.com"


@pytest.mark.parametrize("state", learning.REVIEW_STATES)
@pytest.mark.parametrize("action", [learning.COMPLETE, learning.FINISH, learning.DROP])
def test_review_states_cross_actions(state: str, action: str) -> None:
    if (state, action) == (learning.OPEN, learning.COMPLETE):
        assert learning.next_review_state(state, action) == learning.COMPLETED
    else:
        with pytest.raises(Conflict):
            learning.next_review_state(state, action)


@pytest.mark.parametrize("state", learning.ITEM_STATES)
@pytest.mark.parametrize("action", [learning.FINISH, learning.DROP, learning.COMPLETE])
@pytest.mark.parametrize("rationale", ["", "  ", "Covered by the new refund monitor"])
def test_action_item_states_cross_actions(state: str, action: str, rationale: str) -> None:
    expected = {(learning.OPEN, learning.FINISH): learning.DONE}
    if rationale.strip():
        expected[(learning.OPEN, learning.DROP)] = learning.DROPPED
    if (state, action) in expected:
        assert learning.next_item_state(state, action, rationale) == expected[(state, action)]
    elif (state, action) == (learning.OPEN, learning.DROP):
        with pytest.raises(ValidationFailed, match="rationale"):
            learning.next_item_state(state, action, rationale)
    else:
        with pytest.raises(Conflict):
            learning.next_item_state(state, action, rationale)


def test_a_review_is_due_within_the_configured_hours() -> None:
    assert learning.review_due(NOW) == NOW + timedelta(hours=48)
    assert learning.review_due(NOW, 4) == NOW + timedelta(hours=4)
    assert learning.review_ref(3) == "LR-3"


def test_text_is_required_and_limited() -> None:
    assert learning.clean_text("  what  ", "it") == "what"
    assert learning.clean_text("", "it", required=False) == ""
    with pytest.raises(ValidationFailed, match="say it"):
        learning.clean_text(" ", "it")
    with pytest.raises(ValidationFailed, match="limited"):
        learning.clean_text("x" * 5, "it", 4)


def test_the_prompts_never_ask_who() -> None:
    assert all("who" not in prompt.lower().split() for prompt in learning.PROMPTS)


def test_markdown_escapes_what_people_typed() -> None:
    typed = "# Title\n- [link](javascript:alert(1)) <script>x</script> *bold* & `code`"
    out = learning.md(typed)
    assert "<script>" not in out
    assert "](" not in out
    assert out.startswith("\\# Title")
    assert "\\- \\[link\\]" in out
    assert "&amp;" in out


def overdue(kind: str, due_offset: timedelta) -> learning.Overdue:
    return learning.Overdue(kind, "LR-1", "Add a large-refund scenario", NOW + due_offset, TEAM)


@pytest.mark.parametrize(
    ("kind", "code"),
    [("review", gate.LEARNING_REVIEW_OVERDUE), ("action_item", gate.ACTION_ITEM_OVERDUE)],
)
def test_an_overdue_review_or_item_warns_from_its_due_instant(kind: str, code: str) -> None:
    due = overdue(kind, timedelta(hours=5))
    gi = gate_input((pinned(learning_due=(due,)),), all_signed())
    assert stable_until(gi) == due.due_at
    assert evaluate(replace(gi, now=due.due_at - TICK)).warnings == ()
    at_due = replace(gi, now=due.due_at)
    result = evaluate(at_due)
    assert [w.code for w in result.warnings] == [code]
    assert result.warnings[0].waiting_on == (TEAM,)
    assert result.status == gate.OPEN, "a warning never blocks"
    assert stable_until(at_due) is None


def test_a_released_package_is_not_warned() -> None:
    due = overdue("review", -timedelta(hours=1))
    gi = replace(gate_input((pinned(learning_due=(due,)),), all_signed()), state=lifecycle.RELEASED)
    assert evaluate(gi).warnings == ()
    future = replace(gi, applications=(pinned(learning_due=(overdue("review", timedelta(1)),)),))
    assert stable_until(future) is None


@pytest.mark.parametrize("role", [*sorted(learning.WRITER_ROLES), None, "key_user"])
def test_only_release_managers_and_governance_reviewers_write_reviews(role: str | None) -> None:
    if role in learning.WRITER_ROLES:
        learning.require_writer(role)
    else:
        with pytest.raises(PermissionDenied):
            learning.require_writer(role)


@pytest.mark.parametrize("state", learning.REVIEW_STATES)
def test_only_an_open_review_is_edited(state: str) -> None:
    if state == learning.OPEN:
        learning.require_open(state)
    else:
        with pytest.raises(Conflict, match="completed"):
            learning.require_open(state)
