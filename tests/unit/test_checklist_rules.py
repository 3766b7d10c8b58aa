"""Domain rules of a checklist (gatekeeper.domain.checklist), every branch, without any YAML."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gatekeeper.domain.checklist import (
    Checklist,
    ChecklistInvalid,
    Consumer,
    Governance,
    Item,
    KeyUser,
    Problem,
    Section,
    UserValidation,
    content_digest,
    required_count,
    rule_violations,
)
from gatekeeper.domain.errors import ValidationFailed

ENGINEERS = ("ana@example.com", "raj@example.com")
KEY_USERS = (
    KeyUser("dana@example.com", "Dana Ortiz", "Settlement operations"),
    KeyUser("malik@example.com", "Malik Henderson"),
)


def item(item_id: str = "artifacts", **changes: object) -> Item:
    base = Item(item_id, "Artifacts were built by CI", ENGINEERS, "engineers", 1, "url")
    return replace(base, **changes)


def checklist(
    sections: tuple[Section, ...] | None = None,
    user_validation: UserValidation | None = None,
    **changes: object,
) -> Checklist:
    base = Checklist(
        application="payments-api",
        title="Payments API",
        version=7,
        owner="payments-team@example.com",
        governance=Governance(90, ("release-board@example.com",)),
        sections=sections
        if sections is not None
        else (
            Section("build", "Build", (item("artifacts"), item("migrations", quorum="all"))),
            Section(
                "security",
                "Security",
                (item("scan", signers=("sec@example.com",), signers_group=None),),
            ),
        ),
        user_validation=user_validation
        or UserValidation(KEY_USERS, ("Run the settlement report", "Refund a payment")),
        groups={"engineers": ENGINEERS},
        consumers=(Consumer("finance-ledger", "ledger@example.com"),),
    )
    return replace(base, **changes)


def messages(found: list[tuple[tuple[str | int, ...], str]]) -> list[str]:
    return [message for _, message in found]


# --- required_count and the derived properties -------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "eligible", "required"),
    [(1, 3, 1), (2, 3, 2), (5, 3, 5), ("all", 3, 3), ("all", 0, 0), ("all", 1, 1)],
)
def test_required_count(quorum: int | str, eligible: int, required: int) -> None:
    assert required_count(quorum, eligible) == required


def test_item_and_user_validation_required() -> None:
    assert item(quorum="all").required == len(ENGINEERS)
    assert item(quorum=1).required == 1
    uv = UserValidation(KEY_USERS, ("a",))
    assert uv.quorum == "all"
    assert uv.required == len(KEY_USERS)
    assert replace(uv, quorum=1).required == 1
    assert uv.emails == ("dana@example.com", "malik@example.com")


def test_items_walks_every_section_in_order() -> None:
    found = [(s.id, i.id) for s, i in checklist().items()]
    assert found == [("build", "artifacts"), ("build", "migrations"), ("security", "scan")]


# --- rule_violations, branch by branch ---------------------------------------------------------


def test_a_clean_checklist_has_no_violations() -> None:
    assert rule_violations(checklist()) == []


def test_no_sections_has_no_violations() -> None:
    assert rule_violations(checklist(sections=())) == []


def test_duplicate_section_id() -> None:
    sections = (
        Section("build", "Build", (item("a"),)),
        Section("build", "Build again", (item("b"),)),
    )
    assert rule_violations(checklist(sections=sections)) == [
        (("sections", 1, "id"), "duplicate section id 'build'")
    ]


def test_duplicate_item_id_across_sections() -> None:
    sections = (
        Section("build", "Build", (item("same"),)),
        Section("ops", "Operations", (item("other"), item("same"))),
    )
    assert rule_violations(checklist(sections=sections)) == [
        (
            ("sections", 1, "items", 1, "id"),
            "duplicate item id 'same' (item ids are unique per file)",
        )
    ]


def test_signer_listed_twice() -> None:
    twice = item(signers=("ana@example.com", "ana@example.com", "raj@example.com"))
    found = rule_violations(checklist(sections=(Section("build", "Build", (twice,)),)))
    assert found == [(("sections", 0, "items", 0, "signers"), "a signer is listed more than once")]


@pytest.mark.parametrize(
    ("quorum", "violates"), [(1, False), (2, False), (3, True), ("all", False)]
)
def test_item_quorum_against_signers(quorum: int | str, violates: bool) -> None:
    sections = (Section("build", "Build", (item(quorum=quorum),)),)
    found = rule_violations(checklist(sections=sections))
    if violates:
        assert found == [
            (
                ("sections", 0, "items", 0, "quorum"),
                "quorum 3 is more than the 2 signer(s) of this item",
            )
        ]
    else:
        assert found == []


def test_item_quorum_counts_distinct_signers() -> None:
    twice = item(signers=("ana@example.com", "ana@example.com"), quorum=2)
    assert messages(rule_violations(checklist(sections=(Section("s", "S", (twice,)),)))) == [
        "a signer is listed more than once",
        "quorum 2 is more than the 1 signer(s) of this item",
    ]


@pytest.mark.parametrize(
    ("signers", "violates"),
    [
        (("dana@example.com",), True),
        (("dana@example.com", "malik@example.com"), True),
        (("dana@example.com", "ana@example.com"), False),
        (("ana@example.com",), False),
    ],
)
def test_separation_of_duties(signers: tuple[str, ...], violates: bool) -> None:
    sections = (Section("ops", "Operations", (item(signers=signers, signers_group=None),)),)
    found = rule_violations(checklist(sections=sections))
    sod = [(where, m) for where, m in found if m.startswith("separation of duties")]
    assert found == sod
    assert bool(sod) is violates
    if violates:
        assert sod[0][0] == ("sections", 0, "items", 0, "signers")


def test_an_item_without_signers_is_not_a_separation_of_duties_case() -> None:
    nobody = item(signers=(), quorum="all")
    assert rule_violations(checklist(sections=(Section("s", "S", (nobody,)),))) == []


def test_key_user_listed_twice() -> None:
    users = (*KEY_USERS, KeyUser("dana@example.com", "Dana again"))
    found = rule_violations(checklist(user_validation=UserValidation(users, ("a",), 1)))
    assert found == [
        (("user_validation", "key_users", 2, "email"), "key user dana@example.com is listed twice")
    ]


@pytest.mark.parametrize(
    ("quorum", "violates"), [(1, False), (2, False), (3, True), ("all", False)]
)
def test_user_validation_quorum_against_key_users(quorum: int | str, violates: bool) -> None:
    uv = UserValidation(KEY_USERS, ("a",), quorum)
    found = rule_violations(checklist(user_validation=uv))
    expected = [(("user_validation", "quorum"), "quorum 3 is more than the 2 key user(s)")]
    assert found == (expected if violates else [])


def test_scenario_listed_twice() -> None:
    uv = UserValidation(KEY_USERS, ("Refund a payment", "Refund a payment"))
    assert rule_violations(checklist(user_validation=uv)) == [
        (("user_validation", "scenarios"), "a scenario is listed twice")
    ]


def test_every_violation_is_reported_in_document_order() -> None:
    sections = (
        Section("build", "Build", (item("a", quorum=9),)),
        Section("build", "Build", (item("a", signers=("dana@example.com",), signers_group=None),)),
    )
    uv = UserValidation((*KEY_USERS, KEY_USERS[0]), ("x", "x"), 9)
    found = rule_violations(checklist(sections=sections, user_validation=uv))
    assert [where for where, _ in found] == [
        ("sections", 0, "items", 0, "quorum"),
        ("sections", 1, "id"),
        ("sections", 1, "items", 0, "id"),
        ("sections", 1, "items", 0, "signers"),
        ("user_validation", "key_users", 2, "email"),
        ("user_validation", "quorum"),
        ("user_validation", "scenarios"),
    ]


# --- canonical form ----------------------------------------------------------------------------


def test_canonical_round_trip_with_optional_fields() -> None:
    full = checklist(description="Back-office payments", addresses=("F-12", "F-13"))
    doc = full.to_canonical()
    assert doc["description"] == "Back-office payments"
    assert doc["addresses"] == ["F-12", "F-13"]
    assert doc["sections"][0]["items"][0]["signers"] == "engineers"
    assert doc["sections"][1]["items"][0]["signers"] == ["sec@example.com"]
    assert Checklist.from_canonical(doc) == full


def test_canonical_form_leaves_out_empty_optional_fields() -> None:
    plain = checklist()
    doc = plain.to_canonical()
    assert "description" not in doc
    assert "addresses" not in doc
    assert Checklist.from_canonical(doc) == plain


def test_from_canonical_fills_defaults_of_older_documents() -> None:
    doc = checklist().to_canonical()
    del doc["consumers"]
    doc["user_validation"]["key_users"][1].pop("role")
    restored = Checklist.from_canonical(doc)
    assert restored.consumers == ()
    assert restored.user_validation.key_users[1].role == ""
    doc.pop("groups")
    doc["sections"] = [
        {
            "id": "s",
            "title": "S",
            "items": [
                {
                    "id": "i",
                    "text": "t",
                    "signers": ["a@example.com"],
                    "quorum": 1,
                    "evidence": "none",
                }
            ],
        }
    ]
    assert Checklist.from_canonical(doc).groups == {}


def test_digest_follows_content() -> None:
    base = checklist()
    assert content_digest(base.to_canonical()) == content_digest(checklist().to_canonical())
    assert content_digest(base.to_canonical()) != content_digest(
        replace(base, version=8).to_canonical()
    )
    assert len(content_digest(base.to_canonical())) == 64


# --- problems and the error that carries them --------------------------------------------------


def test_problem_text_and_dict() -> None:
    problem = Problem("checklists/a.yaml", 3, 7, "title: is empty")
    assert str(problem) == "checklists/a.yaml:3:7: title: is empty"
    assert problem.to_dict() == {
        "path": "checklists/a.yaml",
        "line": 3,
        "col": 7,
        "message": "title: is empty",
    }


def test_checklist_invalid_summarises_up_to_three_problems() -> None:
    few = [Problem("a.yaml", n, 1, f"problem {n}") for n in (1, 2, 3)]
    error = ChecklistInvalid(few)
    assert isinstance(error, ValidationFailed)
    assert error.code == "validation_failed"
    assert error.problems == few
    assert error.message == (
        "checklist invalid: a.yaml:1:1: problem 1; a.yaml:2:1: problem 2; a.yaml:3:1: problem 3"
    )
    assert error.details == [p.to_dict() for p in few]


def test_checklist_invalid_says_how_many_more() -> None:
    many = [Problem("a.yaml", n, 1, f"problem {n}") for n in range(1, 6)]
    error = ChecklistInvalid(many)
    assert error.message.endswith("a.yaml:3:1: problem 3 (and 2 more)")
    assert "problem 4" not in error.message
    assert len(error.details) == 5


# --- deputies -----------------------------------------------------------------------------------


def test_deputies_of_the_checklists_own_people_are_fine() -> None:
    cl = checklist(
        deputies={"ana@example.com": ("lee@example.com",), "dana@example.com": ("kim@example.com",)}
    )
    assert rule_violations(cl) == []
    assert cl.deputies_of("ana@example.com") == ("lee@example.com",)
    assert cl.deputies_of("raj@example.com") == ()
    assert Checklist.from_canonical(cl.to_canonical()) == cl
    assert "deputies" not in checklist().to_canonical()


@pytest.mark.parametrize(
    ("deputies", "path", "message"),
    [
        (
            {"stranger@example.com": ("lee@example.com",)},
            ("deputies", "stranger@example.com"),
            "stranger@example.com is not a signer or key user of this checklist",
        ),
        (
            {"ana@example.com": ("ana@example.com",)},
            ("deputies", "ana@example.com", 0),
            "ana@example.com cannot be their own deputy",
        ),
        (
            {"ana@example.com": ("lee@example.com", "lee@example.com")},
            ("deputies", "ana@example.com"),
            "a deputy is listed more than once",
        ),
        (
            {"dana@example.com": ("raj@example.com",)},
            ("deputies", "dana@example.com", 0),
            "separation of duties: raj@example.com signs technical items of payments-api (or "
            "deputises for someone who does), so cannot validate it for key user "
            "dana@example.com",
        ),
        (
            {"ana@example.com": ("malik@example.com",)},
            ("deputies", "ana@example.com", 0),
            "separation of duties: malik@example.com is a key user of payments-api, so cannot "
            "sign its technical items for ana@example.com",
        ),
    ],
)
def test_each_deputy_rule(
    deputies: dict[str, tuple[str, ...]], path: tuple[str | int, ...], message: str
) -> None:
    assert rule_violations(checklist(deputies=deputies)) == [(path, message)]


def test_a_key_users_deputy_cannot_also_deputise_for_an_engineer() -> None:
    found = rule_violations(
        checklist(
            deputies={
                "ana@example.com": ("lee@example.com",),
                "dana@example.com": ("lee@example.com",),
            }
        )
    )
    assert [path for path, _ in found] == [("deputies", "dana@example.com", 0)]
