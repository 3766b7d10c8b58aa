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
            SAMPLE, reviewer="someone@example.com", authors=(), action="approve", consulted="x"
        )


def test_no_author_of_the_change_can_approve_it() -> None:
    for authors in ([" Release-Board@example.com"], ["ana@example.com", REVIEWER]):
        with pytest.raises(PermissionDenied, match="another reviewer must approve"):
            governance.check_review(
                SAMPLE, reviewer=REVIEWER, authors=authors, action="approve", consulted="x"
            )


def test_author_may_request_changes_on_own_version() -> None:
    governance.check_review(
        SAMPLE, reviewer=REVIEWER, authors=[REVIEWER], action="request_changes", consulted=""
    )


@pytest.mark.parametrize("action", [governance.APPROVE, governance.REAFFIRM])
def test_approval_needs_the_key_users_consulted(action: str) -> None:
    with pytest.raises(ValidationFailed, match="key users were consulted"):
        governance.check_review(SAMPLE, reviewer=REVIEWER, authors=(), action=action, consulted=" ")


def test_reviewer_email_is_compared_case_insensitively() -> None:
    governance.check_review(
        SAMPLE,
        reviewer="Release-Board@Example.com",
        authors=("ana@example.com",),
        action="approve",
        consulted="Dana",
    )


def test_unknown_authorship_needs_a_second_reviewer() -> None:
    assert governance.approvals_needed(authorship_known=True) == 1
    assert governance.approvals_needed(authorship_known=False) == 2


@pytest.mark.parametrize(
    ("needed", "earlier", "outcome"),
    [
        (1, (), "approved"),
        (2, (), governance.PARTIALLY_APPROVED),
        (2, ("ux-lead@example.com",), "approved"),
    ],
)
def test_an_approval_completes_once_enough_reviewers_agree(
    needed: int, earlier: tuple[str, ...], outcome: str
) -> None:
    assert (
        governance.approval_outcome(needed=needed, earlier_approvers=earlier, reviewer=REVIEWER)
        == outcome
    )


def test_the_same_reviewer_cannot_give_both_approvals() -> None:
    with pytest.raises(PermissionDenied, match="already approved this version"):
        governance.approval_outcome(needed=2, earlier_approvers=(REVIEWER,), reviewer=REVIEWER)
