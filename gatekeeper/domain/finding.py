"""Post-release findings: the report people send, the finding's state machine and its triage
into a class (escaped past an item, uncovered, not a checklist matter)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from gatekeeper.domain.errors import Conflict, ValidationFailed

OPEN = "open"
ACCEPTED = "accepted"
ADDRESSED = "addressed"
DECLINED = "declined"

ACCEPT = "accept"
DECLINE = "decline"
ADDRESS = "address"

# A reviewer accepts or declines a report; an approved checklist version that references the
# finding addresses it. Approving such a version implies accepting it, hence (open, address).
FINDING_TRANSITIONS: dict[tuple[str, str], str] = {
    (OPEN, ACCEPT): ACCEPTED,
    (OPEN, DECLINE): DECLINED,
    (OPEN, ADDRESS): ADDRESSED,
    (ACCEPTED, DECLINE): DECLINED,
    (ACCEPTED, ADDRESS): ADDRESSED,
}
FINDING_STATES = (OPEN, ACCEPTED, ADDRESSED, DECLINED)
FINDING_ACTIONS = (ACCEPT, DECLINE, ADDRESS)
UNRESOLVED = (OPEN, ACCEPTED)

# Triage classifies a finding; the class decides the state move. Escaped past an item and
# uncovered both mean the checklist should change (accepted); not a checklist matter is what a
# plain decline used to be, and findings declined before classes existed carry it too.
ESCAPED_PAST = "escaped_past"
UNCOVERED = "uncovered"
NOT_A_CHECKLIST_MATTER = "not_a_checklist_matter"
CLASSIFICATIONS = (ESCAPED_PAST, UNCOVERED, NOT_A_CHECKLIST_MATTER)
CLASSIFICATION_ACTION = {
    ESCAPED_PAST: ACCEPT,
    UNCOVERED: ACCEPT,
    NOT_A_CHECKLIST_MATTER: DECLINE,
}

CLASS_LABELS = {
    ESCAPED_PAST: "escaped past an item",
    UNCOVERED: "uncovered (a gap)",
    NOT_A_CHECKLIST_MATTER: "not a checklist matter",
}


def class_label(classification: str | None, state: str | None = None) -> str:
    """How pages name a finding's class. No class: still open, or accepted or addressed
    before triage classified findings (or addressed by a version before anyone triaged it)."""
    if classification is not None:
        return CLASS_LABELS[classification]
    return "not triaged yet" if state == OPEN else "not classified"


MAX_REPORT_CHARS = 4000
IMPACT_LEVELS = ("low", "medium", "high")
HIGH_IMPACT = "high"
MAX_RATIONALE_CHARS = 4000

REF_PREFIX = "F-"
_REF = re.compile(r"^F-([1-9][0-9]{0,17})$", re.IGNORECASE)

_PAST = {ACCEPT: "accepted", DECLINE: "declined", ADDRESS: "addressed"}


def next_finding_state(state: str, action: str) -> str:
    try:
        return FINDING_TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"a finding that is {state} cannot be {_PAST[action]}",
            details={"state": state, "action": action},
        ) from None


def finding_ref(finding_id: int) -> str:
    """The id people write in a checklist's `addresses: [F-12]`."""
    return f"{REF_PREFIX}{finding_id}"


def parse_ref(text: str) -> int | None:
    """The finding id in `F-12` (any case, surrounding spaces ignored); None for other refs."""
    found = _REF.match(text.strip())
    return int(found.group(1)) if found else None


def check_triage(action: str, rationale: str) -> str:
    """The cleaned rationale; declining needs one (why this is not a checklist problem)."""
    cleaned = rationale.strip()
    if action == DECLINE and not cleaned:
        raise ValidationFailed(
            "say why the finding is not a checklist matter (rationale): why the checklist "
            "should not change"
        )
    if len(cleaned) > MAX_RATIONALE_CHARS:
        raise ValidationFailed(f"the rationale is limited to {MAX_RATIONALE_CHARS} characters")
    return cleaned


@dataclass(frozen=True, slots=True)
class Triage:
    """A checked triage: the state move, the class, the item it escaped past (section, item)."""

    action: str
    classification: str
    item: tuple[str, str] | None
    rationale: str


def check_classification(
    classification: str, item: str, rationale: str, items: Collection[str]
) -> Triage:
    """Check a triage against `items`, the `section.item` ids of the checklist version the
    release was gated with. Only an escape names an item (and must); other classes ignore one."""
    if classification not in CLASSIFICATIONS:
        raise ValidationFailed(
            "classify the finding: escaped past an item, uncovered, or not a checklist matter"
        )
    action = CLASSIFICATION_ACTION[classification]
    cleaned = check_triage(action, rationale)
    if classification != ESCAPED_PAST:
        return Triage(action, classification, None, cleaned)
    named = item.strip()
    if not named:
        raise ValidationFailed("name the checklist item it escaped past (section.item)")
    if named not in items:
        raise ValidationFailed(
            f"{named} is not an item of the checklist version the release was gated with"
            + (f" (items: {', '.join(sorted(items))})" if items else " (it had none)")
        )
    section, _, item_id = named.partition(".")
    return Triage(action, classification, (section, item_id), cleaned)


@dataclass(frozen=True, slots=True)
class Report:
    """A problem found after a release, in the reporter's words. It never asks who is at fault:
    only what happened, what it affected and what the checklist could have caught."""

    what_happened: str
    impact: str
    could_have_caught: str
    # low | medium | high: a high one opens a learning review.
    level: str = "medium"

    def validated(self) -> Report:
        fields = {
            "what happened": self.what_happened,
            "the impact": self.impact,
            "what the checklist could have caught": self.could_have_caught,
        }
        problems = {}
        for label, value in fields.items():
            if not value.strip():
                problems[label] = f"say {label}"
            elif len(value.strip()) > MAX_REPORT_CHARS:
                problems[label] = f"{label} is limited to {MAX_REPORT_CHARS} characters"
        if self.level not in IMPACT_LEVELS:
            problems["impact level"] = f"choose the impact level: {', '.join(IMPACT_LEVELS)}"
        if problems:
            raise ValidationFailed("; ".join(problems.values()), details=problems)
        return Report(
            self.what_happened.strip(),
            self.impact.strip(),
            self.could_have_caught.strip(),
            self.level,
        )
