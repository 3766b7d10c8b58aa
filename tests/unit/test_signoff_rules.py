"""What a signer may decide, what must come with the decision, and who may sign at all."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gatekeeper.domain import signoff
from gatekeeper.domain.checklist import (
    Checklist,
    Governance,
    Item,
    KeyUser,
    Section,
    UserValidation,
)
from gatekeeper.domain.errors import PermissionDenied, ValidationFailed
from gatekeeper.domain.signoff import Decision, check_evidence_url, validate_decision

ANA = "ana@example.com"
RAJ = "raj@example.com"
SEC = "sec-oncall@example.com"
DANA = "dana@example.com"
LEE = "lee@example.com"
ASSEMBLER = "rm@example.com"

URL_ITEM = Item("artifacts", "Artifacts built by CI", (ANA, RAJ), evidence="url")
TEXT_ITEM = Item("dependency-scan", "Dependency scan is clean", (SEC,), evidence="text")
PLAIN_ITEM = Item("smoke", "Smoke tests pass", (ANA,))
CHECKLIST = Checklist(
    application="payments-api",
    title="Payments API",
    version=7,
    owner="payments-team@example.com",
    governance=Governance(90, ("release-board@example.com",)),
    sections=(
        Section("build", "Build", (URL_ITEM, PLAIN_ITEM)),
        Section("security", "Security", (TEXT_ITEM,)),
    ),
    user_validation=UserValidation(
        (KeyUser(DANA, "Dana Ortiz"), KeyUser(LEE, "Lee Chen"), KeyUser(ANA, "Ana (engineer)")),
        ("Run the settlement report", "Refund a card payment"),
    ),
)


def item_decision(decision: str, **kw: str) -> Decision:
    return Decision(signoff.ITEM, decision, **kw)


def user_decision(decision: str, comment: str = "", scenarios: tuple[int, ...] = ()) -> Decision:
    return Decision(signoff.KEY_USER, decision, comment, scenarios_confirmed=scenarios)


# validate_decision: the decision must fit the kind -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "decision", "allowed"),
    [
        (signoff.ITEM, signoff.CONFIRMED, "pass, fail, not_applicable"),
        (signoff.ITEM, signoff.PROBLEM, "pass, fail, not_applicable"),
        (signoff.ITEM, "approve", "pass, fail, not_applicable"),
        (signoff.KEY_USER, signoff.PASS, "confirmed, problem"),
        (signoff.KEY_USER, signoff.NOT_APPLICABLE, "confirmed, problem"),
        (signoff.KEY_USER, "", "confirmed, problem"),
    ],
)
def test_decision_must_be_one_of_the_kinds_decisions(
    kind: str, decision: str, allowed: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate_decision(Decision(kind, decision), item=PLAIN_ITEM, scenarios=2)
    assert raised.value.message == f"decision must be one of: {allowed}"


def test_an_unknown_kind_allows_no_decision() -> None:
    with pytest.raises(ValidationFailed, match=r"^decision must be one of: $"):
        validate_decision(Decision("reviewer", signoff.PASS), item=None, scenarios=0)


@pytest.mark.parametrize(
    "decision",
    [
        item_decision(signoff.FAIL, comment="x" * (signoff.MAX_COMMENT_CHARS + 1)),
        item_decision(signoff.PASS, evidence="x" * (signoff.MAX_EVIDENCE_CHARS + 1)),
    ],
    ids=["comment", "evidence"],
)
def test_comment_and_evidence_have_a_size_limit(decision: Decision) -> None:
    with pytest.raises(ValidationFailed, match="limited to 4000 characters"):
        validate_decision(decision, item=TEXT_ITEM, scenarios=0)


def test_the_size_limit_applies_after_stripping() -> None:
    padded = "  " + "x" * signoff.MAX_COMMENT_CHARS + "\n"
    cleaned = validate_decision(
        item_decision(signoff.FAIL, comment=padded), item=PLAIN_ITEM, scenarios=0
    )
    assert cleaned.comment == "x" * signoff.MAX_COMMENT_CHARS


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (item_decision(signoff.NOT_APPLICABLE), "say why this item does not apply"),
        (item_decision(signoff.NOT_APPLICABLE, comment="  \n "), "say why this item does not"),
        (item_decision(signoff.FAIL), "say what failed"),
        (item_decision(signoff.FAIL, comment="\t"), "say what failed"),
        (user_decision(signoff.PROBLEM), "describe the problem you found"),
        (user_decision(signoff.PROBLEM, comment="   "), "describe the problem you found"),
    ],
)
def test_negative_and_not_applicable_decisions_need_a_reason(
    decision: Decision, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        validate_decision(decision, item=PLAIN_ITEM, scenarios=2)


# validate_decision: evidence ------------------------------------------------------------------


def test_pass_on_a_url_item_needs_an_http_link() -> None:
    with pytest.raises(ValidationFailed, match="evidence must be an http"):
        validate_decision(item_decision(signoff.PASS), item=URL_ITEM, scenarios=0)
    with pytest.raises(ValidationFailed, match="evidence must be an http"):
        validate_decision(
            item_decision(signoff.PASS, evidence="see the CI run"), item=URL_ITEM, scenarios=0
        )
    cleaned = validate_decision(
        item_decision(signoff.PASS, evidence=" https://ci.example.com/run/42 "),
        item=URL_ITEM,
        scenarios=0,
    )
    assert cleaned.evidence == "https://ci.example.com/run/42"


def test_pass_on_a_text_item_needs_a_description() -> None:
    with pytest.raises(ValidationFailed, match="this item needs evidence"):
        validate_decision(item_decision(signoff.PASS, evidence="  "), item=TEXT_ITEM, scenarios=0)
    cleaned = validate_decision(
        item_decision(signoff.PASS, evidence="scan 2026-11-20: 0 critical"),
        item=TEXT_ITEM,
        scenarios=0,
    )
    assert cleaned.evidence == "scan 2026-11-20: 0 critical"


@pytest.mark.parametrize("decision", [signoff.PASS, signoff.FAIL, signoff.NOT_APPLICABLE])
@pytest.mark.parametrize(
    "evidence", ["javascript:alert(document.cookie)", "not a link", "x" * 5000]
)
def test_evidence_an_item_does_not_ask_for_is_dropped(decision: str, evidence: str) -> None:
    cleaned = validate_decision(
        item_decision(decision, comment="why", evidence=evidence), item=PLAIN_ITEM, scenarios=0
    )
    assert cleaned == item_decision(decision, comment="why")


def test_pass_without_a_known_item_keeps_no_evidence() -> None:
    cleaned = validate_decision(
        item_decision(signoff.PASS, evidence="anything"), item=None, scenarios=0
    )
    assert cleaned == item_decision(signoff.PASS)


def test_evidence_given_with_another_decision_on_a_url_item_must_still_be_a_link() -> None:
    with pytest.raises(ValidationFailed, match="evidence must be an http"):
        validate_decision(
            item_decision(signoff.FAIL, comment="red build", evidence="ftp://ci/run/1"),
            item=URL_ITEM,
            scenarios=0,
        )
    cleaned = validate_decision(
        item_decision(signoff.FAIL, comment="red build", evidence="http://ci/run/1"),
        item=URL_ITEM,
        scenarios=0,
    )
    assert cleaned.evidence == "http://ci/run/1"


def test_a_failure_on_a_url_item_may_come_without_evidence() -> None:
    cleaned = validate_decision(
        item_decision(signoff.FAIL, comment="red build"), item=URL_ITEM, scenarios=0
    )
    assert (cleaned.decision, cleaned.comment, cleaned.evidence) == ("fail", "red build", "")


def test_evidence_with_another_decision_on_a_text_item_is_free_text() -> None:
    cleaned = validate_decision(
        item_decision(signoff.NOT_APPLICABLE, comment="no deps changed", evidence="lockfile"),
        item=TEXT_ITEM,
        scenarios=0,
    )
    assert cleaned.evidence == "lockfile"


@pytest.mark.parametrize("item", [None, URL_ITEM, TEXT_ITEM])
def test_key_user_validation_keeps_no_evidence(item: Item | None) -> None:
    decision = Decision(
        signoff.KEY_USER, signoff.CONFIRMED, evidence="javascript:x", scenarios_confirmed=(0,)
    )
    assert validate_decision(decision, item=item, scenarios=1).evidence == ""


# validate_decision: scenarios -----------------------------------------------------------------


@pytest.mark.parametrize("scenarios", [(-1, 0, 1), (0, 1, 2), (5,)])
def test_confirmed_scenarios_must_be_listed_ones(scenarios: tuple[int, ...]) -> None:
    with pytest.raises(ValidationFailed, match="among the listed scenarios"):
        validate_decision(
            user_decision(signoff.CONFIRMED, scenarios=scenarios), item=None, scenarios=2
        )


@pytest.mark.parametrize("scenarios", [(), (0,), (1, 1)])
def test_confirmation_covers_every_scenario(scenarios: tuple[int, ...]) -> None:
    with pytest.raises(ValidationFailed, match="confirm every scenario, or report a problem"):
        validate_decision(
            user_decision(signoff.CONFIRMED, scenarios=scenarios), item=None, scenarios=2
        )


def test_confirmed_scenarios_are_deduplicated_and_sorted() -> None:
    cleaned = validate_decision(
        user_decision(signoff.CONFIRMED, comment=" fine ", scenarios=(1, 0, 1)),
        item=None,
        scenarios=2,
    )
    assert cleaned == Decision(signoff.KEY_USER, signoff.CONFIRMED, "fine", "", (0, 1))


def test_a_problem_may_confirm_some_scenarios() -> None:
    cleaned = validate_decision(
        user_decision(signoff.PROBLEM, comment="refunds fail", scenarios=(0,)),
        item=None,
        scenarios=2,
    )
    assert cleaned.scenarios_confirmed == (0,)
    assert cleaned.comment == "refunds fail"


def test_a_problem_may_confirm_no_scenario() -> None:
    cleaned = validate_decision(
        user_decision(signoff.PROBLEM, comment="cannot log in"), item=None, scenarios=2
    )
    assert cleaned.scenarios_confirmed == ()


def test_problem_scenarios_must_still_be_listed_ones() -> None:
    with pytest.raises(ValidationFailed, match="among the listed scenarios"):
        validate_decision(
            user_decision(signoff.PROBLEM, comment="x", scenarios=(2,)), item=None, scenarios=2
        )


def test_scenarios_are_confirmed_by_key_users_only() -> None:
    decision = Decision(signoff.ITEM, signoff.PASS, scenarios_confirmed=(0,))
    with pytest.raises(ValidationFailed, match="scenarios are confirmed by key users only"):
        validate_decision(decision, item=PLAIN_ITEM, scenarios=2)


# check_evidence_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://ci.example.com/run/1",
        "https://ci.example.com/run/1?tab=log#L3",
        "HTTPS://CI.EXAMPLE.COM/",
        "https://user@host:8443/x",
    ],
)
def test_http_links_are_evidence(url: str) -> None:
    check_evidence_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ci.example.com/run/1",
        "//ci.example.com/run/1",
        "ftp://ci.example.com/run/1",
        "javascript:alert(1)",
        "data:text/html,<b>hi</b>",
        "file:///etc/passwd",
        "https://",
        "https:///path-only",
        "mailto:ana@example.com",
    ],
)
def test_anything_else_is_not(url: str) -> None:
    with pytest.raises(ValidationFailed, match=r"evidence must be an http\(s\) link"):
        check_evidence_url(url)


# technical_signers ----------------------------------------------------------------------------


def test_technical_signers_are_every_item_signer_of_every_section() -> None:
    assert signoff.technical_signers(CHECKLIST) == frozenset({ANA, RAJ, SEC})


def test_a_checklist_without_items_has_no_technical_signers() -> None:
    empty = Checklist(
        "empty-app",
        "Empty",
        1,
        "owner@example.com",
        Governance(90, ("board@example.com",)),
        (Section("nothing", "Nothing yet", ()),),
        UserValidation((KeyUser(DANA, "Dana"),), ("Log in",)),
    )
    assert signoff.technical_signers(empty) == frozenset()


# check_may_sign -------------------------------------------------------------------------------


def may_sign(signer: str, kind: str, item: Item | None = None, assembler: str = ASSEMBLER) -> None:
    signoff.check_may_sign(
        signer=signer, kind=kind, assembler=assembler, checklist=CHECKLIST, item=item
    )


def test_listed_signers_may_sign_their_item() -> None:
    may_sign(ANA, signoff.ITEM, URL_ITEM)
    may_sign(RAJ, signoff.ITEM, URL_ITEM)
    may_sign(SEC, signoff.ITEM, TEXT_ITEM)


def test_key_users_may_validate() -> None:
    may_sign(DANA, signoff.KEY_USER)
    may_sign(LEE, signoff.KEY_USER)


@pytest.mark.parametrize(
    ("kind", "item"), [(signoff.ITEM, URL_ITEM), (signoff.KEY_USER, None)], ids=["item", "user"]
)
def test_the_assembler_may_sign_nothing_in_their_package(kind: str, item: Item | None) -> None:
    signer = ANA if kind == signoff.ITEM else DANA
    with pytest.raises(PermissionDenied, match="assembled a package cannot sign off in it"):
        may_sign(signer, kind, item, assembler=signer)


def test_an_item_signer_must_be_listed_on_that_item() -> None:
    with pytest.raises(PermissionDenied, match=f"{SEC} is not a signer of this item"):
        may_sign(SEC, signoff.ITEM, URL_ITEM)
    with pytest.raises(PermissionDenied, match=f"{DANA} is not a signer of this item"):
        may_sign(DANA, signoff.ITEM, PLAIN_ITEM)


def test_an_item_sign_off_needs_the_item() -> None:
    with pytest.raises(PermissionDenied, match="is not a signer of this item"):
        may_sign(ANA, signoff.ITEM, None)


def test_only_named_key_users_validate() -> None:
    with pytest.raises(PermissionDenied, match="only the named key users of payments-api"):
        may_sign("someone@example.com", signoff.KEY_USER)
    with pytest.raises(PermissionDenied, match="only the named key users"):
        may_sign(RAJ, signoff.KEY_USER)


def test_a_key_user_who_signs_technical_items_cannot_also_validate() -> None:
    with pytest.raises(PermissionDenied) as raised:
        may_sign(ANA, signoff.KEY_USER)
    assert raised.value.message == (
        f"{ANA} signs technical items of payments-api, so cannot also be the key user validating it"
    )


# deputies --------------------------------------------------------------------------------------

DEPUTY = "deputy@example.com"
WITH_DEPUTIES = replace(CHECKLIST, deputies={RAJ: (DEPUTY, ANA), DANA: (DEPUTY,)})


def test_eligible_signers_of_each_kind() -> None:
    item = signoff.eligible_signers(CHECKLIST, kind="item", item=URL_ITEM, assembler=RAJ)
    assert item == (ANA,)
    assert signoff.eligible_signers(CHECKLIST, kind="item", item=None, assembler=RAJ) == ()
    # ANA signs technical items, so validates nothing.
    users = signoff.eligible_signers(CHECKLIST, kind="key_user", item=None, assembler=LEE)
    assert users == (DANA,)


def test_a_deputy_may_sign_for_the_person_they_stand_in_for() -> None:
    signoff.check_may_sign(
        signer=DEPUTY,
        kind="item",
        assembler=ASSEMBLER,
        checklist=WITH_DEPUTIES,
        item=URL_ITEM,
        on_behalf_of=RAJ,
    )


@pytest.mark.parametrize(
    ("signer", "kind", "item", "person", "message"),
    [
        (LEE, "item", URL_ITEM, RAJ, "may not sign for raj@example.com"),
        # A deputy already signing the item in their own name never counts twice.
        (ANA, "item", URL_ITEM, RAJ, "may not sign for raj@example.com"),
        # The person must be one who may sign it themselves.
        (DEPUTY, "item", TEXT_ITEM, RAJ, "is not a signer of this item"),
        # An engineer's deputy never validates for a key user.
        (DEPUTY, "key_user", None, DANA, "may not sign for dana@example.com"),
    ],
)
def test_who_may_not_stand_in(
    signer: str, kind: str, item: Item | None, person: str, message: str
) -> None:
    with pytest.raises(PermissionDenied, match=message):
        signoff.check_may_sign(
            signer=signer,
            kind=kind,
            assembler=ASSEMBLER,
            checklist=WITH_DEPUTIES,
            item=item,
            on_behalf_of=person,
        )
