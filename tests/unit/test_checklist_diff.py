"""The checklist diff: every kind of change between two versions, and none for equal ones."""

from __future__ import annotations

import copy
from typing import Any

from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.checklist_diff import (
    ADDED,
    CHANGED,
    REMOVED,
    RETITLED,
    REWORDED,
    FieldChange,
    ItemChange,
    KeyUserChange,
    SectionChange,
    diff_checklists,
)

BASE: dict[str, Any] = {
    "schema": 1,
    "application": "payments-api",
    "title": "Payments API",
    "version": 6,
    "owner": "payments-team@example.com",
    "governance": {"review_every_days": 90, "reviewers": ["board@example.com"]},
    "groups": {"build": ["ana@example.com", "raj@example.com"]},
    "sections": [
        {
            "id": "build",
            "title": "Build",
            "items": [
                {
                    "id": "artifacts",
                    "text": "Artifacts come from CI",
                    "signers": "build",
                    "quorum": 1,
                    "evidence": "url",
                },
                {
                    "id": "sbom",
                    "text": "An SBOM is attached",
                    "signers": ["ana@example.com"],
                    "quorum": 1,
                    "evidence": "none",
                },
            ],
        },
        {
            "id": "security",
            "title": "Security",
            "items": [
                {
                    "id": "scan",
                    "text": "Dependency scan is clean",
                    "signers": ["sec@example.com"],
                    "quorum": 1,
                    "evidence": "none",
                }
            ],
        },
    ],
    "user_validation": {
        "key_users": [
            {"email": "dana@example.com", "name": "Dana", "role": "Settlement"},
            {"email": "malik@example.com", "name": "Malik", "role": "Refunds"},
        ],
        "quorum": "all",
        "scenarios": ["Run the settlement report", "Refund a card payment"],
    },
    "consumers": [{"name": "partner-portal", "contact": "partners@example.com"}],
}


def checklist(doc: dict[str, Any]) -> Checklist:
    return Checklist.from_canonical(doc)


def changed(**edits: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["version"] = 7
    doc.update(edits)
    return doc


def test_identical_content_has_no_differences() -> None:
    diff = diff_checklists(checklist(BASE), checklist(changed()))
    assert diff.unchanged
    assert (diff.old_version, diff.new_version, diff.application) == (6, 7, "payments-api")


def test_sections_added_removed_and_retitled() -> None:
    doc = changed()
    doc["sections"][0]["title"] = "Build and package"
    removed = doc["sections"].pop(1)
    doc["sections"].append(
        {
            "id": "operations",
            "title": "Operations",
            "items": [{**removed["items"][0], "id": "runbook", "text": "Runbook updated"}],
        }
    )
    diff = diff_checklists(checklist(BASE), checklist(doc))
    assert diff.sections == (
        SectionChange("build", RETITLED, "Build", "Build and package"),
        SectionChange("operations", ADDED, new_title="Operations"),
        SectionChange("security", REMOVED, old_title="Security"),
    )
    assert diff.items == (
        ItemChange("runbook", "operations", ADDED, new_text="Runbook updated"),
        ItemChange("scan", "security", REMOVED, old_text="Dependency scan is clean"),
    )
    assert not diff.unchanged


def test_reworded_items_keep_their_other_changes() -> None:
    doc = changed()
    item = doc["sections"][1]["items"][0]
    item["text"] = "Dependency scan shows no critical findings"
    item["signers"] = ["sec@example.com", "compliance@example.com"]
    item["quorum"] = "all"
    diff = diff_checklists(checklist(BASE), checklist(doc))
    (change,) = diff.items
    assert change.change == REWORDED
    assert change.old_text == "Dependency scan is clean"
    assert change.new_text == "Dependency scan shows no critical findings"
    assert change.details == (
        FieldChange("signers", "sec@example.com", "sec@example.com, compliance@example.com"),
        FieldChange("quorum", "1", "all"),
    )


def test_items_with_new_signers_evidence_or_place_are_changed_not_reworded() -> None:
    doc = changed()
    sbom = doc["sections"][0]["items"].pop(1)
    sbom["evidence"] = "text"
    doc["sections"][1]["items"].append(sbom)
    doc["groups"]["build"] = ["ana@example.com", "li@example.com"]
    diff = diff_checklists(checklist(BASE), checklist(doc))
    assert diff.items == (
        ItemChange(
            "artifacts",
            "build",
            CHANGED,
            "Artifacts come from CI",
            "Artifacts come from CI",
            (
                FieldChange(
                    "signers",
                    "group build (ana@example.com, raj@example.com)",
                    "group build (ana@example.com, li@example.com)",
                ),
            ),
        ),
        ItemChange(
            "sbom",
            "security",
            CHANGED,
            "An SBOM is attached",
            "An SBOM is attached",
            (FieldChange("section", "build", "security"), FieldChange("evidence", "none", "text")),
        ),
    )
    assert diff.fields == (
        FieldChange(
            "group build", "ana@example.com, raj@example.com", "ana@example.com, li@example.com"
        ),
    )


def test_key_users_and_scenarios() -> None:
    doc = changed()
    uv = doc["user_validation"]
    uv["key_users"] = [
        {"email": "dana@example.com", "name": "Dana Ortiz", "role": "Settlement lead"},
        {"email": "amir@example.com", "name": "Amir", "role": ""},
    ]
    uv["scenarios"] = ["Run the settlement report", "Refund a card payment from the back office"]
    diff = diff_checklists(checklist(BASE), checklist(doc))
    assert diff.key_users == (
        KeyUserChange(
            "dana@example.com",
            CHANGED,
            (
                FieldChange("name", "Dana", "Dana Ortiz"),
                FieldChange("role", "Settlement", "Settlement lead"),
            ),
        ),
        KeyUserChange("amir@example.com", ADDED),
        KeyUserChange("malik@example.com", REMOVED),
    )
    assert diff.scenarios_added == ("Refund a card payment from the back office",)
    assert diff.scenarios_removed == ("Refund a card payment",)


def test_unchanged_key_users_are_not_listed() -> None:
    doc = changed()
    doc["user_validation"]["key_users"].pop()
    diff = diff_checklists(checklist(BASE), checklist(doc))
    assert diff.key_users == (KeyUserChange("malik@example.com", REMOVED),)


def test_checklist_level_fields() -> None:
    doc = changed(
        title="Payments",
        owner="payments@example.com",
        description="Card payments and refunds",
        governance={"review_every_days": 60, "reviewers": []},
        consumers=[],
        addresses=["F-12"],
        groups={"release": ["ana@example.com"], "build": BASE["groups"]["build"]},
    )
    doc["user_validation"]["quorum"] = 1
    diff = diff_checklists(checklist(BASE), checklist(doc))
    assert diff.fields == (
        FieldChange("title", "Payments API", "Payments"),
        FieldChange("owner", "payments-team@example.com", "payments@example.com"),
        FieldChange("description", "", "Card payments and refunds"),
        FieldChange("review every (days)", "90", "60"),
        FieldChange("governance reviewers", "board@example.com", "(none)"),
        FieldChange("key-user quorum", "all", "1"),
        FieldChange("consumers", "partner-portal <partners@example.com>", "(none)"),
        FieldChange("addresses findings", "(none)", "F-12"),
        FieldChange("group release", "(none)", "ana@example.com"),
    )


def test_groups_removed_and_any_direction() -> None:
    doc = changed()
    doc["groups"] = {}
    doc["sections"][0]["items"][0]["signers"] = ["ana@example.com", "raj@example.com"]
    forward = diff_checklists(checklist(BASE), checklist(doc))
    assert (
        FieldChange("group build", "ana@example.com, raj@example.com", "(none)") in forward.fields
    )
    backward = diff_checklists(checklist(doc), checklist(BASE))
    assert (backward.old_version, backward.new_version) == (7, 6)
    assert FieldChange("group build", "(none)", "ana@example.com, raj@example.com") in (
        backward.fields
    )
