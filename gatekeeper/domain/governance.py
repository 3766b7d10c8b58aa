"""Governance of checklist versions: the version state machine and who may review."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

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
# The first of two approvals a version of unknown authorship needs: it stays pending review.
PARTIALLY_APPROVED = "partially_approved"


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
    checklist: Checklist,
    *,
    reviewer: str,
    authors: Collection[str],
    action: str,
    consulted: str,
) -> None:
    """Raise unless `reviewer` may take `action` on this checklist version, whose change was
    written by `authors` (every author and committer since the last approved version)."""
    reviewer = reviewer.strip().lower()
    if reviewer not in checklist.governance.reviewers:
        raise PermissionDenied(
            f"{reviewer} is not a governance reviewer of {checklist.application} "
            f"(reviewers: {', '.join(checklist.governance.reviewers)})"
        )
    if action == APPROVE and reviewer in {a.strip().lower() for a in authors}:
        raise PermissionDenied(
            f"{reviewer} authored version {checklist.version} of {checklist.application}; "
            "another reviewer must approve it"
        )
    if action in (APPROVE, REAFFIRM) and not consulted.strip():
        raise ValidationFailed(
            "say which key users were consulted about the user-validation section "
            "before approving (consulted)"
        )


def approvals_needed(authorship_known: bool) -> int:
    """A version whose authors are all known needs one reviewer who is not among them; one
    whose author may be anyone, a reviewer included, needs two reviewers to agree."""
    return 1 if authorship_known else 2


def approval_outcome(*, needed: int, earlier_approvers: Collection[str], reviewer: str) -> str:
    """What one more approval of a pending version records: the approval once `needed`
    distinct reviewers have approved, else a partial approval (the version stays pending)."""
    if reviewer in earlier_approvers:
        raise PermissionDenied(
            f"{reviewer} already approved this version; another reviewer must give the "
            "second approval"
        )
    return REVIEW_OUTCOME[APPROVE] if len(earlier_approvers) + 1 >= needed else PARTIALLY_APPROVED


# Where a checklist stands against its review schedule.
NOT_APPROVED = "not_approved"  # no approved version yet: nothing to review on a schedule
REVIEW_OK = "ok"
REVIEW_DUE_SOON = "due_soon"  # inside the lead time before the due date
REVIEW_OVERDUE = "overdue"  # at or past the due date
AHEAD, OVERDUE = "ahead", "overdue"  # the two reminders sent per due date


def review_due_at(last_review_at: datetime | None, review_every_days: int) -> datetime | None:
    """When the next governance review is due: the last approval or reaffirmation plus the
    checklist's interval. None when the checklist was never approved."""
    if last_review_at is None:
        return None
    return last_review_at + timedelta(days=review_every_days)


def review_standing(due_at: datetime | None, now: datetime, lead: timedelta) -> str:
    """Overdue from the due instant on (the gate uses the same boundary), due soon within
    `lead` before it."""
    if due_at is None:
        return NOT_APPROVED
    if now >= due_at:
        return REVIEW_OVERDUE
    if now >= due_at - lead:
        return REVIEW_DUE_SOON
    return REVIEW_OK


def reminder_due(due_at: datetime | None, now: datetime, lead: timedelta) -> str | None:
    """Which reminder the reviewers should have by now for this due date, if any."""
    return {REVIEW_OVERDUE: OVERDUE, REVIEW_DUE_SOON: AHEAD}.get(review_standing(due_at, now, lead))
