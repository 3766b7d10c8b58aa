"""The release-package state machine and package keys."""

from __future__ import annotations

import itertools

import pytest

from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.errors import Conflict, ValidationFailed

PAST = {"edit": "edited", "submit": "submitted", "release": "released", "cancel": "cancelled"}


@pytest.mark.parametrize(
    ("state", "action"), list(itertools.product(lifecycle.STATES, lifecycle.ACTIONS))
)
def test_every_state_and_action(state: str, action: str) -> None:
    expected = lifecycle.TRANSITIONS.get((state, action))
    if expected is None:
        with pytest.raises(Conflict) as raised:
            lifecycle.next_state(state, action)
        spoken = state.replace("_", " ")
        assert raised.value.message == f"a package that is {spoken} cannot be {PAST[action]}"
        assert raised.value.details == {"state": state, "action": action}
    else:
        assert lifecycle.next_state(state, action) == expected


def test_the_table_is_the_documented_lifecycle() -> None:
    # draft → in_review → released, cancelled from any non-final state, nothing out of a final one.
    assert lifecycle.TRANSITIONS == {
        ("draft", "edit"): "draft",
        ("draft", "submit"): "in_review",
        ("draft", "cancel"): "cancelled",
        ("in_review", "edit"): "in_review",
        ("in_review", "release"): "released",
        ("in_review", "cancel"): "cancelled",
    }
    for state in lifecycle.FINAL_STATES:
        assert not any(s == state for s, _ in lifecycle.TRANSITIONS)
    for state in set(lifecycle.STATES) - set(lifecycle.FINAL_STATES):
        assert lifecycle.TRANSITIONS[(state, lifecycle.CANCEL)] == lifecycle.CANCELLED


def test_a_draft_cannot_be_released_without_review() -> None:
    with pytest.raises(Conflict, match="a package that is draft cannot be released"):
        lifecycle.next_state(lifecycle.DRAFT, lifecycle.RELEASE)


@pytest.mark.parametrize(
    "key",
    [
        "2026.11-r3",
        "a",
        "7",
        "Release_2026-11",
        "a" * 64,
        "0.-_",
    ],
)
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    assert lifecycle.check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a" * 65,
        "-starts-with-dash",
        ".starts-with-dot",
        "_starts-with-underscore",
        "has space",
        "has/slash",
        "trailing-newline\n",
        "ünicode",
        "semi;colon",
        "../etc",
    ],
)
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationFailed, match="must be 1-64 letters") as raised:
        lifecycle.check_key(key)
    assert repr(key) in raised.value.message
