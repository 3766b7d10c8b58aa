"""Scenarios key users propose: a scenario they rely on that their application's checklist does
not list, its state (open, then adopted or declined), and the snippet reviewers paste."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable

from gatekeeper.domain.checklist import MAX_TEXT_CHARS
from gatekeeper.domain.errors import Conflict, ValidationFailed

OPEN = "open"
ADOPTED = "adopted"
DECLINED = "declined"
PROPOSAL_STATES = (OPEN, ADOPTED, DECLINED)

ADOPT = "adopt"
DECLINE = "decline"
_TRANSITIONS = {(OPEN, ADOPT): ADOPTED, (OPEN, DECLINE): DECLINED}
_PAST = {ADOPT: "adopted", DECLINE: "declined"}

# The scenario becomes one checklist scenario line, so it has the same limit.
MAX_SCENARIO_CHARS = MAX_TEXT_CHARS
MAX_NOTES_CHARS = 2000
MAX_RATIONALE_CHARS = 4000
# One emailed link may propose this many scenarios: enough for a person, too few to flood.
MAX_PER_LINK = 5

REF_PREFIX = "P-"
_REF = re.compile(r"^P-([1-9][0-9]{0,17})$", re.IGNORECASE)
_LOOKS_LIKE_REF = re.compile(r"^P-", re.IGNORECASE)


def proposal_ref(proposal_id: int) -> str:
    """The id people write in a checklist's `addresses: [P-3]`."""
    return f"{REF_PREFIX}{proposal_id}"


def parse_ref(text: str) -> int | None:
    """The proposal id in `P-3` (any case, surrounding spaces ignored); None for other refs."""
    found = _REF.match(text.strip())
    return int(found.group(1)) if found else None


def malformed_ref(text: str) -> bool:
    """Whether `text` starts like a proposal id (`P-`) but is not one (`P-0`, `P-x`)."""
    return bool(_LOOKS_LIKE_REF.match(text.strip())) and parse_ref(text) is None


def next_state(state: str, action: str) -> str:
    try:
        return _TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(
            f"a proposal that is {state} cannot be {_PAST[action]}",
            details={"state": state, "action": action},
        ) from None


def same_scenario(text: str) -> str:
    """The form two scenarios are compared in: case and spacing do not matter."""
    return " ".join(text.split()).casefold()


def adopted_by(scenario: str, scenarios: Iterable[str]) -> bool:
    return same_scenario(scenario) in {same_scenario(s) for s in scenarios}


def _invisible(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def check_proposal(scenario: str, notes: str) -> tuple[str, str]:
    """The cleaned scenario (one line, as a checklist lists it) and notes."""
    cleaned = " ".join(scenario.split())
    if not cleaned:
        raise ValidationFailed("describe the scenario you rely on (scenario)")
    if len(cleaned) > MAX_SCENARIO_CHARS:
        raise ValidationFailed(
            f"the scenario is {len(cleaned)} characters; the limit is {MAX_SCENARIO_CHARS}"
        )
    if _invisible(cleaned):
        raise ValidationFailed("the scenario contains a control character; remove it")
    kept = notes.strip()
    if len(kept) > MAX_NOTES_CHARS:
        raise ValidationFailed(
            f"the notes are {len(kept)} characters; the limit is {MAX_NOTES_CHARS}"
        )
    return cleaned, kept


def check_decline(rationale: str) -> str:
    cleaned = rationale.strip()
    if not cleaned:
        raise ValidationFailed(
            "say why the scenario is not adopted (rationale): the proposer reads it"
        )
    if len(cleaned) > MAX_RATIONALE_CHARS:
        raise ValidationFailed(
            f"the rationale is {len(cleaned)} characters; the limit is {MAX_RATIONALE_CHARS}"
        )
    return cleaned


def yaml_snippet(ref: str, scenario: str) -> str:
    """What a reviewer pastes into the checklist: the scenario, quoted so any text stays one
    YAML string (JSON strings are YAML), and the `addresses` entry that adopts the proposal."""
    quoted = json.dumps(scenario, ensure_ascii=False)
    return f"addresses:\n  - {ref}\nuser_validation:\n  scenarios:\n    - {quoted}\n"
