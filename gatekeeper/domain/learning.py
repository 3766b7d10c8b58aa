"""Learning reviews: blameless post-release reviews and the action items they give owners,
their states, when they fall due, and their Markdown that escapes what people typed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from gatekeeper.domain import roles
from gatekeeper.domain.errors import Conflict, PermissionDenied, ValidationFailed

DEFAULT_DUE_HOURS = 48
# How long before its due date a review's people, and an action item's owners, are reminded
# (once: a review due in under that gets its reminder at once).
REVIEW_REMINDER_LEAD = timedelta(hours=12)
ITEM_REMINDER_LEAD = timedelta(days=2)

# Review states: an open review is due; completing it records the statement and factors.
OPEN = "open"
COMPLETED = "completed"
REVIEW_STATES = (OPEN, COMPLETED)
COMPLETE = "complete"
REVIEW_TRANSITIONS = {(OPEN, COMPLETE): COMPLETED}

# Action item states: open → done | dropped (dropping needs a rationale).
DONE = "done"
DROPPED = "dropped"
ITEM_STATES = (OPEN, DONE, DROPPED)
FINISH = "finish"
DROP = "drop"
ITEM_TRANSITIONS = {(OPEN, FINISH): DONE, (OPEN, DROP): DROPPED}

ITEM_KINDS = ("checklist_change", "process", "tooling")
CHECKLIST_CHANGE = "checklist_change"

MAX_TEXT_CHARS = 4000
MAX_TITLE_CHARS = 200

# What the contributing-factor prompts ask: the system, never a person.
PROMPTS = (
    "What made each decision reasonable at the time, with what people knew then?",
    "What in the checklist, the tools or the process made this failure easy?",
    "What would have made it hard to miss?",
)

LEARNING_REVIEW_PREFIX = "LR-"

# Who opens a review by hand and writes it: the people who run releases and govern checklists.
# An account single sign-on gave no role cannot.
WRITER_ROLES = frozenset(roles.ROLES)


def require_writer(role: str | None) -> None:
    if role not in WRITER_ROLES:
        raise PermissionDenied("only a release manager or a governance reviewer can do this")


def review_ref(review_id: int) -> str:
    return f"{LEARNING_REVIEW_PREFIX}{review_id}"


def next_review_state(state: str, action: str) -> str:
    try:
        return REVIEW_TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"a learning review that is {state} cannot {action}",
            details={"state": state, "action": action},
        ) from None


def require_open(state: str) -> None:
    """A completed review is a record: its statement, factors and timeline no longer change."""
    if state != OPEN:
        raise Conflict("this learning review is completed", details={"state": state})


def next_item_state(state: str, action: str, rationale: str = "") -> str:
    try:
        after = ITEM_TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"an action item that is {state} cannot {action}",
            details={"state": state, "action": action},
        ) from None
    if after == DROPPED and not rationale.strip():
        raise ValidationFailed("say why the action item is dropped (rationale)")
    return after


def review_due(triggered_at: datetime, due_hours: int = DEFAULT_DUE_HOURS) -> datetime:
    return triggered_at + timedelta(hours=due_hours)


def clean_text(value: str, what: str, limit: int = MAX_TEXT_CHARS, *, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"say {what}")
    if len(cleaned) > limit:
        raise ValidationFailed(f"{what} is limited to {limit} characters")
    return cleaned


@dataclass(frozen=True, slots=True)
class Overdue:
    """An open learning review or action item of an application, with its due date."""

    kind: str  # "review" or "action_item"
    ref: str
    title: str
    due_at: datetime
    owner: str


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def md(text: str) -> str:
    """What a person typed, safe inside Markdown: every character Markdown (or HTML within it)
    would read as markup is escaped, and line starts cannot open a heading or a list."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;"))
    return "  \n".join(line.strip() for line in escaped.splitlines())
