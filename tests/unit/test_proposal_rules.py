"""Scenario proposals: refs, states, the proposal's text limits, adoption by a listed scenario,
and the YAML snippet reviewers paste."""

from __future__ import annotations

import pytest
import yaml

from gatekeeper.domain import proposal as rules
from gatekeeper.domain.errors import Conflict, ValidationFailed


def test_refs_round_trip_and_only_well_formed_ones_parse() -> None:
    assert rules.proposal_ref(3) == "P-3"
    assert rules.parse_ref(" p-3 ") == 3
    assert [rules.parse_ref(r) for r in ("P-0", "P-x", "F-3", "P-")] == [None] * 4


def test_a_mistyped_proposal_id_is_malformed_but_other_references_are_not() -> None:
    assert rules.malformed_ref("P-0")
    assert rules.malformed_ref("p-abc")
    assert not rules.malformed_ref("P-12")
    assert not rules.malformed_ref("F-0")
    assert not rules.malformed_ref("JIRA-12")


def test_an_open_proposal_is_adopted_or_declined_once() -> None:
    assert rules.next_state(rules.OPEN, rules.ADOPT) == rules.ADOPTED
    assert rules.next_state(rules.OPEN, rules.DECLINE) == rules.DECLINED
    with pytest.raises(Conflict, match="a proposal that is declined cannot be adopted"):
        rules.next_state(rules.DECLINED, rules.ADOPT)


def test_a_version_adopts_a_scenario_it_lists_whatever_the_case_and_spacing() -> None:
    listed = ("Refund a split payment  from the back office",)
    assert rules.adopted_by("refund a SPLIT payment from the back office", listed)
    assert not rules.adopted_by("Refund a split payment", listed)


def test_a_proposal_is_one_clean_line_within_limits() -> None:
    assert rules.check_proposal("  Refund\n a  split payment ", " because\n") == (
        "Refund a split payment",
        "because",
    )
    with pytest.raises(ValidationFailed, match="describe the scenario"):
        rules.check_proposal(" \n ", "")
    with pytest.raises(ValidationFailed, match="the limit is 2000"):
        rules.check_proposal("x" * (rules.MAX_SCENARIO_CHARS + 1), "")
    with pytest.raises(ValidationFailed, match="control character"):
        rules.check_proposal("Refund\u202ea payment", "")
    with pytest.raises(ValidationFailed, match="the notes are"):
        rules.check_proposal("Refund", "n" * (rules.MAX_NOTES_CHARS + 1))


def test_declining_needs_a_rationale_within_the_limit() -> None:
    assert rules.check_decline("  covered by item refunds  ") == "covered by item refunds"
    with pytest.raises(ValidationFailed, match="rationale"):
        rules.check_decline("  ")
    with pytest.raises(ValidationFailed, match="the limit is 4000"):
        rules.check_decline("r" * (rules.MAX_RATIONALE_CHARS + 1))


@pytest.mark.parametrize(
    "scenario",
    ["Refund: a split payment", 'Say "yes" # then - [no] {x}', "Überweisung & <b>ß</b>", "- *a"],
)
def test_the_snippet_is_yaml_that_reads_back_as_the_scenario(scenario: str) -> None:
    snippet = rules.yaml_snippet("P-3", scenario)
    assert yaml.safe_load(snippet) == {
        "addresses": ["P-3"],
        "user_validation": {"scenarios": [scenario]},
    }
