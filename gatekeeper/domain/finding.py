"""Post-release findings: the report people send, the finding's state machine and its triage."""

from __future__ import annotations

import re
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
        raise ValidationFailed("say why the finding is declined (rationale)")
    if len(cleaned) > MAX_RATIONALE_CHARS:
        raise ValidationFailed(f"the rationale is limited to {MAX_RATIONALE_CHARS} characters")
    return cleaned


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
