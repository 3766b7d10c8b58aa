"""Governance of checklist versions: the version state machine and who may review."""

from __future__ import annotations

from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.errors import Conflict, PermissionDenied, ValidationFailed

PENDING_REVIEW = "pending_review"
APPROVED = "approved"
CHANGES_REQUESTED = "changes_requested"
SUPERSEDED = "superseded"

APPROVE = "approve"
REQUEST_CHANGES = "request_changes"
REAFFIRM = "reaffirm"
SUPERSEDE = "supersede"

VERSION_TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING_REVIEW, APPROVE): APPROVED,
    (PENDING_REVIEW, REQUEST_CHANGES): CHANGES_REQUESTED,
    (PENDING_REVIEW, SUPERSEDE): SUPERSEDED,
    (APPROVED, REAFFIRM): APPROVED,
}
VERSION_STATES = (PENDING_REVIEW, APPROVED, CHANGES_REQUESTED, SUPERSEDED)
VERSION_ACTIONS = (APPROVE, REQUEST_CHANGES, REAFFIRM, SUPERSEDE)

# The outcome recorded for each review action.
REVIEW_OUTCOME = {APPROVE: "approved", REQUEST_CHANGES: "changes_requested", REAFFIRM: "reaffirmed"}


def next_version_state(state: str, action: str) -> str:
    try:
        return VERSION_TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"a checklist version that is {state.replace('_', ' ')} cannot be {_PAST[action]}",
            details={"state": state, "action": action},
        ) from None


_PAST = {
    APPROVE: "approved",
    REQUEST_CHANGES: "sent back for changes",
    REAFFIRM: "reaffirmed (only the approved version in use can be)",
    SUPERSEDE: "superseded",
}


def check_review(
    checklist: Checklist, *, reviewer: str, author: str | None, action: str, consulted: str
) -> None:
    """Raise unless `reviewer` may take `action` on this checklist version."""
    reviewer = reviewer.strip().lower()
    if reviewer not in checklist.governance.reviewers:
        raise PermissionDenied(
            f"{reviewer} is not a governance reviewer of {checklist.application} "
            f"(reviewers: {', '.join(checklist.governance.reviewers)})"
        )
    if action == APPROVE and author is not None and reviewer == author.strip().lower():
        raise PermissionDenied(
            f"{reviewer} authored version {checklist.version} of {checklist.application}; "
            "another reviewer must approve it"
        )
    if action in (APPROVE, REAFFIRM) and not consulted.strip():
        raise ValidationFailed(
            "say which key users were consulted about the user-validation section "
            "before approving (consulted)"
        )
