"""The checklist's `emergency:` section: read with its defaults, errors at file:line:col (unknown
items, a quorum above the approvers), the JSON Schema, and the canonical form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from gatekeeper.checklist_format.schema import checklist_json_schema
from gatekeeper.checklist_format.validator import parse_checklist
from gatekeeper.domain.checklist import Checklist, ChecklistInvalid, Problem, canonical_json

PAYMENTS = Path(__file__).parents[2] / "checklists" / "payments-api.yaml"
STOREFRONT = Path(__file__).parents[2] / "checklists" / "storefront-web.yaml"
SHOWN = "checklists/payments-api.yaml"


def with_emergency(block: str) -> str:
    text = PAYMENTS.read_text(encoding="utf-8")
    return re.sub(r"(?m)^(user_validation:\n)", block + r"\g<1>", text, count=1)


def problems(text: str) -> list[Problem]:
    with pytest.raises(ChecklistInvalid) as caught:
        parse_checklist(text.encode(), SHOWN)
    return caught.value.problems


def at(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle, text.index("emergency:"))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def test_no_section_means_no_emergency() -> None:
    assert parse_checklist(PAYMENTS.read_bytes(), SHOWN).emergency is None
    assert "emergency" not in parse_checklist(PAYMENTS.read_bytes(), SHOWN).to_canonical()


def test_the_section_is_read_with_its_defaults() -> None:
    text = with_emergency("emergency:\n  approvers: [a@example.com, b@example.com]\n")
    emergency = parse_checklist(text.encode(), SHOWN).emergency
    assert emergency is not None
    assert (emergency.quorum, emergency.required_items, emergency.review_within_hours) == (
        2,
        (),
        48,
    )


def test_approvers_may_be_a_group_and_the_canonical_form_round_trips() -> None:
    text = with_emergency(
        "emergency:\n  approvers: payments-engineers\n  quorum: 3\n"
        "  required_items: [security.dependency-scan]\n  review_within_hours: 12\n"
    )
    checklist = parse_checklist(text.encode(), SHOWN)
    assert checklist.emergency is not None
    assert checklist.emergency.approvers == (
        "li@example.com",
        "tomas@example.com",
        "raj@example.com",
    )
    canonical = checklist.to_canonical()
    assert canonical["emergency"]["approvers"] == "payments-engineers"
    assert Checklist.from_canonical(json.loads(canonical_json(canonical))) == checklist
    plain = with_emergency("emergency:\n  approvers: [a@example.com]\n  quorum: 1\n")
    listed = parse_checklist(plain.encode(), SHOWN)
    assert Checklist.from_canonical(listed.to_canonical()) == listed


def test_the_sample_storefront_allows_emergencies() -> None:
    emergency = parse_checklist(STOREFRONT.read_bytes(), "x").emergency
    assert emergency is not None
    assert emergency.required_items == ("quality.e2e-suite",)


@pytest.mark.parametrize(
    ("block", "needle", "message"),
    [
        (
            "  approvers: [a@example.com]\n  required_items: [build.nope]\n  quorum: 1\n",
            "build.nope",
            "emergency.required_items[0]: unknown item 'build.nope'",
        ),
        (
            "  approvers: [a@example.com, b@example.com]\n  quorum: 3\n",
            "3\n",
            "emergency.quorum: quorum 3 is more than the 2 emergency approver(s)",
        ),
        ("  approvers: [a@example.com]\n", "approvers", "quorum 2 is more than the 1"),
        ("  approvers: nobody\n", "nobody", "unknown group 'nobody'"),
        ("  approvers: [a@example.com]\n  quorum: 0\n", "0\n", "between 1 and"),
        (
            "  approvers: [a@example.com]\n  quorum: 1\n  review_within_hours: 0\n",
            "0\n",
            "between 1 and",
        ),
        ("  approvers: [a@example.com]\n  quorum: 1\n  required_items: [3]\n", "3]", "text"),
        ("  approvers: [not-an-email]\n  quorum: 1\n", "not-an-email", "not a valid email"),
        ("  approver: [a@example.com]\n", "approver", "did you mean 'approvers'"),
    ],
)
def test_errors_name_file_line_and_column(block: str, needle: str, message: str) -> None:
    text = with_emergency("emergency:\n" + block)
    found = problems(text)
    line, col = at(text, needle)
    assert any(
        (p.path, p.line, p.col) == (SHOWN, line, col) and message in p.message for p in found
    ), found


def test_a_section_that_is_not_a_mapping_is_an_error() -> None:
    (problem,) = problems(with_emergency("emergency: [a@example.com]\n"))
    assert "expected a mapping" in problem.message


def test_the_section_is_in_the_json_schema() -> None:
    good = with_emergency(
        "emergency:\n  approvers: [a@example.com, b@example.com]\n"
        "  required_items: [security.dependency-scan]\n  review_within_hours: 4\n"
    )
    jsonschema.validate(yaml.safe_load(good), checklist_json_schema())
    bad = yaml.safe_load(with_emergency("emergency:\n  quorum: 2\n"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, checklist_json_schema())
