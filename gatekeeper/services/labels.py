"""What codes are called where people read them: audit actions in timelines and evidence packs,
sign-off decisions on pages."""

from __future__ import annotations

from collections.abc import Mapping

# Every action the code writes (tests/unit/test_audit_labels.py finds them in the source).
# Keep labels of actions the code no longer writes: old events still carry them.
ACTIONS: Mapping[str, str] = {
    "package.created": "Package assembled",
    "package.edited": "Package edited",
    "package.submitted": "Submitted for sign-off",
    "package.released": "Released",
    "package.cancelled": "Cancelled",
    "signoff.requested": "Sign-off requested",
    "signoff.recorded": "Sign-off recorded",
    "signoff.made_stale": "Sign-off no longer counts: its application changed",
    "link.issued": "Sign-off link emailed",
    "link.opened": "Sign-off link opened",
    "report_link.issued": "Problem-report link emailed",
    "learning_review.opened": "Learning review opened",
    "learning_review.entry_added": "Timeline entry added to a learning review",
    "learning_review.edited": "Learning review draft saved",
    "learning_review.completed": "Learning review written up",
    "learning_review.reminded": "Learning review due soon: its people reminded",
    "action_item.reminded": "Action item due soon: its owners reminded",
    "action_item.added": "Action item given to a team",
    "action_item.done": "Action item done",
    "action_item.dropped": "Action item dropped",
    "confirmation.requested": "Key user asked: still working after go-live?",
    "confirmation.reminded": "Key user reminded to confirm after go-live",
    "confirmation.answered": "Key user answered after go-live",
    "triage_link.issued": "Finding triage link emailed to a reviewer",
    "deployment.recorded": "Deployment reported by CI",
    "finding.reported": "Problem reported after release",
    "finding.accepted": "Finding accepted: the checklist should change",
    "finding.declined": "Finding declined",
    "finding.addressed": "Finding addressed by a new checklist version",
    "scenario.proposed": "Key user proposed a scenario the checklist does not list",
    "scenario.adopted": "Proposed scenario adopted by a new checklist version",
    "scenario.declined": "Proposed scenario declined",
    "checklist.synced": "Checklist version synced",
    "records.sealed": "Records older than record MACs sealed",
    "audit.restore_accepted": "Restored database accepted as the history",
    "checklist.approved": "Checklist version approved",
    "checklist.partially_approved": "First of two approvals (the author is unknown)",
    "checklist.changes_requested": "Changes requested to a checklist version",
    "checklist.reaffirmed": "Checklist reaffirmed in a scheduled review",
    "review_link.issued": "Governance review link emailed",
    "review.reminded": "Governance review reminder sent",
    "user.added": "Staff account added",
    "user.activated": "Staff account activated",
    "user.deactivated": "Staff account deactivated",
    "user.signed_in": "Signed in",
    "user.role_changed": "Staff role changed by single sign-on groups",
    "user.sign_in_refused": "Single sign-on refused",
    "user.signed_out": "Signed out (every session of the account ended)",
    "token.created": "API token created",
    "token.revoked": "API token revoked",
    "webhook.added": "Webhook subscription added",
    "deployment.approved": "CI platform deployment approved",
    "deployment.rejected": "CI platform deployment rejected",
    "webhook.removed": "Webhook subscription removed",
    "webhook.secret_rotated": "Webhook signing secret rotated",
    "person.away": "Absence recorded: deputies sign in their place",
    "person.back": "Absence ended",
    "signoff.handed_to_deputies": "Sign-off requests handed to deputies (signer away)",
    "signoff.taken_back": "Sign-off requests returned from deputies (signer back)",
    "freezes.synced": "Freeze calendar version synced",
    "freezes.approved": "Freeze calendar version approved",
    "freezes.changes_requested": "Changes requested to a freeze calendar version",
    "calendar_key.created": "Calendar feed link created",
    "calendar_key.revoked": "Calendar feed link revoked",
    "emergency.declared": "Emergency declared",
    "emergency_link.issued": "Emergency approval link emailed",
    "emergency.approved": "Emergency release approved",
    "emergency.review_started": "Post-implementation review sent out",
    "emergency.review_completed": "Post-implementation review complete",
}


DECISIONS: Mapping[str, str] = {
    "pass": "pass",
    "fail": "fail",
    "not_applicable": "not applicable",
    "confirmed": "confirmed",
    "problem": "problem reported",
}


def _words(code: str) -> str:
    return code.replace(".", " ").replace("_", " ").strip()


def action_label(action: str) -> str:
    """The readable name of `action`; one without a label still reads as words, not code."""
    known = ACTIONS.get(action)
    if known is not None:
        return known
    words = _words(action)
    return words[:1].upper() + words[1:]


def decision_label(decision: str) -> str:
    return DECISIONS.get(decision) or _words(decision)
