"""Post-release findings: the state machine (full cross product), triage rules, refs, reports."""

from __future__ import annotations

import itertools

import pytest

from gatekeeper.domain import finding
from gatekeeper.domain.errors import Conflict, ValidationFailed

EXPECTED = {
    ("open", "accept"): "accepted",
    ("open", "decline"): "declined",
    ("open", "address"): "addressed",
    ("accepted", "decline"): "declined",
    ("accepted", "address"): "addressed",
}


@pytest.mark.parametrize(
    ("state", "action"), list(itertools.product(finding.FINDING_STATES, finding.FINDING_ACTIONS))
)
def test_every_state_and_action(state: str, action: str) -> None:
    expected = EXPECTED.get((state, action))
    assert finding.FINDING_TRANSITIONS.get((state, action)) == expected
    if expected is None:
        with pytest.raises(Conflict, match=f"a finding that is {state} cannot be") as raised:
            finding.next_finding_state(state, action)
        assert raised.value.details == {"state": state, "action": action}
    else:
        assert finding.next_finding_state(state, action) == expected


def test_addressed_and_declined_are_final() -> None:
    for state in (finding.ADDRESSED, finding.DECLINED):
        assert not [a for (s, a) in finding.FINDING_TRANSITIONS if s == state]
    assert set(finding.UNRESOLVED) == {finding.OPEN, finding.ACCEPTED}


def test_declining_needs_a_rationale() -> None:
    with pytest.raises(ValidationFailed, match="why the finding is not a checklist matter"):
        finding.check_triage(finding.DECLINE, "  \n")
    assert finding.check_triage(finding.DECLINE, " not a release problem ") == (
        "not a release problem"
    )


def test_accepting_needs_no_rationale_but_keeps_one() -> None:
    assert finding.check_triage(finding.ACCEPT, "") == ""
    assert finding.check_triage(finding.ACCEPT, " add a scenario ") == "add a scenario"


def test_rationale_has_a_size_limit() -> None:
    with pytest.raises(ValidationFailed, match="limited to 4000"):
        finding.check_triage(finding.ACCEPT, "x" * (finding.MAX_RATIONALE_CHARS + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("F-12", 12),
        (" f-7 ", 7),
        ("F-0", None),
        ("F-012", None),
        ("F-", None),
        ("JIRA-12", None),
        ("F-12a", None),
        ("F-1234567890123456789", None),
    ],
)
def test_refs_parse_only_finding_ids(text: str, expected: int | None) -> None:
    assert finding.parse_ref(text) == expected


def test_ref_round_trips() -> None:
    assert finding.finding_ref(12) == "F-12"
    assert finding.parse_ref(finding.finding_ref(12)) == 12


def test_a_report_is_cleaned() -> None:
    report = finding.Report(" It broke \n", " Customers waited ", " A scenario ").validated()
    assert report == finding.Report("It broke", "Customers waited", "A scenario")


def test_a_report_needs_every_answer_and_says_which_is_missing() -> None:
    with pytest.raises(ValidationFailed) as raised:
        finding.Report("It broke", " ", "").validated()
    assert set(raised.value.details) == {"the impact", "what the checklist could have caught"}
    assert "say the impact" in raised.value.message


def test_a_report_has_a_size_limit() -> None:
    with pytest.raises(ValidationFailed, match="limited to 4000"):
        finding.Report("x" * 4001, "i", "c").validated()


def test_a_report_never_asks_who() -> None:
    fields = set(finding.Report.__dataclass_fields__)
    assert fields == {"what_happened", "impact", "could_have_caught", "level"}
    assert not {f for f in fields if "who" in f or "by" in f or "person" in f}


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_a_report_keeps_its_impact_level(level: str) -> None:
    assert finding.Report("a", "b", "c", level).validated().level == level


def test_an_unknown_impact_level_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="impact level"):
        finding.Report("a", "b", "c", "urgent").validated()
