"""The checklist-version state machine and who may review."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gatekeeper.checklist_format.validator import load_checklist_file
from gatekeeper.domain import governance
from gatekeeper.domain.errors import Conflict, PermissionDenied, ValidationFailed

SAMPLE = load_checklist_file(
    Path(__file__).resolve().parents[2] / "checklists" / "payments-api.yaml"
)
REVIEWER = "release-board@example.com"


@pytest.mark.parametrize(
    ("state", "action"),
    list(itertools.product(governance.VERSION_STATES, governance.VERSION_ACTIONS)),
)
def test_every_state_and_action(state: str, action: str) -> None:
    expected = governance.VERSION_TRANSITIONS.get((state, action))
    if expected is None:
        with pytest.raises(Conflict, match="cannot be"):
            governance.next_version_state(state, action)
    else:
        assert governance.next_version_state(state, action) == expected


def test_reviewer_must_be_named_in_the_checklist() -> None:
    with pytest.raises(PermissionDenied, match="not a governance reviewer"):
        governance.check_review(
            SAMPLE, reviewer="someone@example.com", author=None, action="approve", consulted="x"
        )


def test_author_cannot_approve_own_version() -> None:
    with pytest.raises(PermissionDenied, match="another reviewer must approve"):
        governance.check_review(
            SAMPLE,
            reviewer=REVIEWER,
            author=" Release-Board@example.com",
            action="approve",
            consulted="x",
        )


def test_author_may_request_changes_on_own_version() -> None:
    governance.check_review(
        SAMPLE, reviewer=REVIEWER, author=REVIEWER, action="request_changes", consulted=""
    )


@pytest.mark.parametrize("action", [governance.APPROVE, governance.REAFFIRM])
def test_approval_needs_the_key_users_consulted(action: str) -> None:
    with pytest.raises(ValidationFailed, match="key users were consulted"):
        governance.check_review(
            SAMPLE, reviewer=REVIEWER, author=None, action=action, consulted=" "
        )


def test_reviewer_email_is_compared_case_insensitively() -> None:
    governance.check_review(
        SAMPLE,
        reviewer="Release-Board@Example.com",
        author=None,
        action="approve",
        consulted="Dana",
    )
