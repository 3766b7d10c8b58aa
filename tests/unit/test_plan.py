"""The submission plan mirrors what submitting requests, with the same separation of duties."""

from __future__ import annotations

from typing import Any

from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.plan import PlannedApplication, plan_submission

MANAGER = "rm@example.com"


def checklist(**overrides: Any) -> Checklist:
    doc: dict[str, Any] = {
        "schema": 1,
        "application": "payments-api",
        "title": "Payments API",
        "version": 7,
        "owner": "payments@example.com",
        "governance": {"review_every_days": 90, "reviewers": ["board@example.com"]},
        "groups": {},
        "sections": [
            {
                "id": "build",
                "title": "Build",
                "items": [
                    {
                        "id": "ci",
                        "text": "Built by CI",
                        "signers": ["ana@example.com", MANAGER],
                        "quorum": 1,
                        "evidence": "url",
                    },
                    {
                        "id": "both",
                        "text": "Two people checked",
                        "signers": ["ana@example.com", MANAGER],
                        "quorum": "all",
                        "evidence": "none",
                    },
                ],
            }
        ],
        "user_validation": {
            "key_users": [
                {"email": "dana@example.com", "name": "Dana", "role": ""},
                {"email": "ana@example.com", "name": "Ana", "role": ""},
            ],
            "quorum": 1,
            "scenarios": ["Settle", "Refund"],
        },
        "consumers": [],
    }
    doc.update(overrides)
    return Checklist.from_canonical(doc)


def test_plan_lists_requirements_people_and_exclusions() -> None:
    plan = plan_submission(
        [PlannedApplication("payments-api", "7.4.0", checklist())], assembler=MANAGER
    )
    (app,) = plan.applications
    assert (app.application, app.version_label, app.checklist_version) == (
        "payments-api",
        "7.4.0",
        7,
    )
    ci, both, validation = app.requirements
    assert (ci.asked, ci.excluded, ci.needed, ci.evidence, ci.reachable) == (
        ("ana@example.com",),
        (MANAGER,),
        1,
        "url",
        True,
    )
    assert both.needed == 2
    assert not both.reachable
    assert validation.section is None
    # Ana signs technical items, so she cannot also validate as a key user.
    assert validation.asked == ("dana@example.com",)
    assert validation.excluded == ("ana@example.com",)
    assert app.scenarios == ("Settle", "Refund")
    assert app.required == plan.required == 1 + 2 + 1
    assert app.requests == plan.requests == 1 + 1 + 1, (
        "the manager and Ana-as-key-user are not asked"
    )
    people = {p.email: p.asks for p in plan.people}
    assert set(people) == {"ana@example.com", "dana@example.com"}
    assert people["dana@example.com"] == ("payments-api: key-user validation",)
    assert people["ana@example.com"][0] == "payments-api: Build › Built by CI"
    assert plan.problems == (
        "payments-api: Build › Two people checked needs 2 sign-off(s) but only 1 listed "
        "signer(s) may sign (separation of duties)",
    )


def test_an_application_without_an_approved_checklist_is_a_problem() -> None:
    plan = plan_submission(
        [
            PlannedApplication("storefront-web", "1.0", None),
            PlannedApplication("payments-api", "7.4.0", checklist()),
        ],
        assembler="someone-else@example.com",
    )
    assert [a.application for a in plan.applications] == ["payments-api", "storefront-web"]
    missing = plan.applications[1]
    assert (missing.checklist_version, missing.requirements, missing.required) == (None, (), 0)
    assert missing.requests == 0
    assert plan.problems == (
        "storefront-web has no approved checklist: the gate will be blocked until a governance "
        "reviewer approves one",
    )
    assert all(r.reachable for r in plan.applications[0].requirements)


def test_empty_plan() -> None:
    plan = plan_submission([], assembler=MANAGER)
    assert (plan.applications, plan.people, plan.problems, plan.required) == ((), (), (), 0)
    assert plan.requests == 0
