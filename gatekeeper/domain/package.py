"""Release packages: the lifecycle state machine and the rules for keys and edits."""

from __future__ import annotations

import re

from gatekeeper.domain.errors import Conflict, ValidationFailed

DRAFT = "draft"
IN_REVIEW = "in_review"
RELEASED = "released"
CANCELLED = "cancelled"
STATES = (DRAFT, IN_REVIEW, RELEASED, CANCELLED)
FINAL_STATES = (RELEASED, CANCELLED)

EDIT = "edit"
SUBMIT = "submit"
RELEASE = "release"
CANCEL = "cancel"
ACTIONS = (EDIT, SUBMIT, RELEASE, CANCEL)

# Editing a draft changes nothing else; editing a package in review bumps its revision.
TRANSITIONS: dict[tuple[str, str], str] = {
    (DRAFT, EDIT): DRAFT,
    (DRAFT, SUBMIT): IN_REVIEW,
    (DRAFT, CANCEL): CANCELLED,
    (IN_REVIEW, EDIT): IN_REVIEW,
    (IN_REVIEW, RELEASE): RELEASED,
    (IN_REVIEW, CANCEL): CANCELLED,
}

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_KEY_RE = re.compile(KEY_PATTERN)
MAX_SUMMARY_CHARS = 4000


def next_state(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"a package that is {state.replace('_', ' ')} cannot be {_PAST[action]}",
            details={"state": state, "action": action},
        ) from None


_PAST = {EDIT: "edited", SUBMIT: "submitted", RELEASE: "released", CANCEL: "cancelled"}


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise ValidationFailed(
            f"package key {key!r} must be 1-64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit (e.g. 2026.11-r3)"
        )
    return key
