"""Separation of duties, attacked through every way in: the staff web UI, the emailed links and the
JSON API (and the command line, where it can decide a review).

- the release manager who assembled a package cannot sign in it, listed as a signer or not;
- only the named key users validate an application, and not those who sign its technical items;
- a person counts once per item, however many links or requests reach them;
- a checklist version is never approved by its author.

Each refused attempt must leave nothing behind: no sign-off or review row, no audit event of one,
the request still pending; and the person sees why."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import (
    AuditEvent,
    ChecklistVersion,
    GovernanceReview,
    OutboxMessage,
    Package,
    ReviewLink,
    Signoff,
    SignoffLink,
    SignoffRequest,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import governance
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import PermissionDenied
from gatekeeper.domain.signoff import Decision
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, packages, signoffs, tokens, users
from gatekeeper.services.signoffs import RESEND_LIMIT
from gatekeeper.web import access
from tests.conftest import SAMPLES
from tests.functional.api_helpers import EVIDENCE, Api, assert_envelope, sync_and_approve
from tests.functional.web_helpers import (
    ADMIN,
    MANAGER,
    add_staff,
    add_user,
    client,
    csrf,
    fresh_csrf,
    post,
    sign_in,
)
from tests.support.access import browser_post_rules, staff_rules, url
from tests.support.api_tokens import legacy_token
from tests.support.api_walk import write_operations
from tests.support.flows import race
from tests.support.governance import BOARD, UX_LEAD, checklist_dir, write_version
from tests.support.governance import tokens as emailed
from tests.support.link_forms import positive_form, request_prefixes, sign_link

pytestmark = pytest.mark.security

KEY = "2026.11-sod"
RAJ = "raj@example.com"  # build-engineers and payments-engineers of payments-api
ANA = "ana@example.com"  # build-engineers only
KEY_USERS = ("refunds-desk@example.com", "settlement-lead@example.com")
OUTSIDER = "mallory@example.com"
MIGRATIONS = "migrations-reversible"  # payments-engineers (li, tomas, raj), quorum 2
RAJ_ITEMS = {"artifacts-from-ci", MIGRATIONS, "rollback-plan"}
ASSEMBLERS = pytest.mark.parametrize(
    "assembler", [RAJ, MANAGER], ids=["assembler-listed-as-signer", "assembler-not-a-signer"]
)


def email_link(app: Flask, session: Session, clock: FixedClock, signer: str) -> None:
    """Email `signer` a link for whatever requests of theirs the package has now."""
    signoffs.issue_links(
        session,
        packages.get_package(session, KEY),
        settings=runtime(app).link_settings(),
        clock=clock,
        signers=[signer],
    )


@pytest.fixture
def people(app: Flask, clock: FixedClock) -> None:
    """Staff of every role, an engineer who also assembles releases (a release manager account
    for raj), payments-api's governance reviewer, and the sample checklists approved."""
    add_staff(clock)
    add_user(clock, RAJ, users.RELEASE_MANAGER)
    add_user(clock, BOARD, users.GOVERNANCE_REVIEWER)
    sync_and_approve(SAMPLES, clock)


# --- helpers ------------------------------------------------------------------------------------


def assemble(app: Flask, clock: FixedClock, key: str = KEY, *, assembler: str = MANAGER) -> None:
    """A payments-api package, assembled by `assembler` and submitted: every link is emailed."""
    spec = packages.PackageSpec(
        key, f"Release {key}", "production", None, (packages.ApplicationSpec("payments-api", "8"),)
    )
    with unit_of_work(db.session()) as session:
        packages.create_package(session, spec, assembler=assembler, clock=clock)
        signoffs.submit_for_signoff(
            session, key, actor=assembler, clock=clock, links=runtime(app).link_settings()
        )


class Recorded(NamedTuple):
    signer: str
    kind: str
    item_id: str | None
    revision: int


def recorded_signoffs() -> list[Recorded]:
    db.session.remove()
    found = [
        Recorded(s.signer, s.kind, s.item_id, s.revision)
        for s in db.session.scalars(sa.select(Signoff).order_by(Signoff.id))
    ]
    db.session.remove()
    return found


def evidence_of_deciding() -> dict[str, object]:
    """Everything a recorded sign-off or review leaves behind."""
    signed = recorded_signoffs()
    found: dict[str, object] = {
        "signoffs": signed,
        "signed_requests": db.session.scalars(
            sa.select(SignoffRequest.id)
            .where(SignoffRequest.state == "signed")
            .order_by(SignoffRequest.id)
        ).all(),
        "reviews": db.session.execute(
            sa.select(GovernanceReview.reviewer, GovernanceReview.outcome)
        ).all(),
        "versions": db.session.execute(
            sa.select(ChecklistVersion.id, ChecklistVersion.state).order_by(ChecklistVersion.id)
        ).all(),
        "events": db.session.scalars(
            sa.select(AuditEvent.action)
            .where(
                sa.or_(
                    AuditEvent.action == "signoff.recorded",
                    sa.and_(
                        AuditEvent.action.startswith("checklist."),
                        AuditEvent.action != "checklist.synced",
                    ),
                )
            )
            .order_by(AuditEvent.seq)
        ).all(),
    }
    db.session.remove()
    return found


def asked(key: str = KEY) -> set[str]:
    """Everyone with a sign-off request in the package, and everyone emailed a link for it."""
    db.session.remove()
    package_id = db.session.scalar(sa.select(Package.id).where(Package.key == key))
    requested = set(
        db.session.scalars(
            sa.select(SignoffRequest.signer).where(SignoffRequest.package_id == package_id)
        )
    )
    linked = set(
        db.session.scalars(
            sa.select(SignoffLink.signer).where(SignoffLink.package_id == package_id)
        )
    )
    db.session.remove()
    return requested | linked


def emailed_to(address: str) -> list[str]:
    """The templates of every email to `address`, but the staff sign-in links."""
    db.session.remove()
    found = list(
        db.session.scalars(
            sa.select(OutboxMessage.template).where(
                OutboxMessage.to_address == address, OutboxMessage.template != "sign_in"
            )
        )
    )
    db.session.remove()
    return found


def pending_ids(*, kind: str | None = None, signer: str | None = None) -> list[int]:
    db.session.remove()
    query = sa.select(SignoffRequest.id).where(SignoffRequest.state == "pending")
    if kind:
        query = query.where(SignoffRequest.kind == kind)
    if signer:
        query = query.where(SignoffRequest.signer == signer)
    found = list(db.session.scalars(query.order_by(SignoffRequest.id)))
    db.session.remove()
    return found


def link_path(address: str) -> str:
    """The newest sign-off link emailed to `address`, as a path."""
    db.session.remove()
    token = emailed("s", "signoff_request")[address]
    db.session.remove()
    return f"/s/{token}"


def decisions_for_everyone(who: str) -> dict[str, str]:
    """A form that tries to decide every pending request, as whichever kind it is, and names
    `who` in every field a sign-off or a review row has."""
    form = {
        "decision": "pass",
        "signer": who,
        "reviewer": who,
        "author": who,
        "kind": "key_user",
        "request_id": str(pending_ids()[0]),
        "revision": "1",
        "scenarios_confirmed": "0,1,2",
        "evidence": EVIDENCE,
        "action": governance.APPROVE,
        "consulted": "every key user, in person",
        "outcome": "approved",
        "state": "approved",
        "version": "8",
    }
    for request_id in pending_ids():
        prefix = f"r{request_id}"
        form[f"{prefix}-decision"] = "confirmed"
        form[f"{prefix}-evidence"] = EVIDENCE
        form.update({f"{prefix}-scenario-{i}": "on" for i in range(4)})
    return form


def refused_page(response: TestResponse, status: int, says: str) -> None:
    assert response.status_code == status, response.text
    assert says in response.text, response.text


def gate(clock: FixedClock, key: str = KEY) -> gate_rules.GateResult:
    try:
        return packages.evaluate_gate(db.session(), key, clock=clock, overdue_policy="block")
    finally:
        db.session.remove()


def item_blocker(result: gate_rules.GateResult, item: str) -> gate_rules.Blocker:
    (found,) = [b for b in result.blockers if b.item == item]
    return found


def author_a_new_version(
    runner: FlaskCliRunner, tmp_path: Path, author: str, application: str = "payments-api"
) -> None:
    """A new version of `application`, synced from the command line as written by `author`:
    its governance reviewers are emailed a review link."""
    directory = checklist_dir(tmp_path, f"by-{application}")
    version = {"payments-api": 8, "storefront-web": 13}[application]
    write_version(directory, application, version)
    result = runner.invoke(cli, ["checklists", "sync", str(directory), "--author", author])
    assert result.exit_code == 0, result.output
    db.session.remove()


def pending_version(application: str = "payments-api") -> ChecklistVersion:
    db.session.remove()
    found = checklists.catalogue_entry(db.session(), application)
    assert found is not None
    (pending,) = [v for v in found.versions if v.state == governance.PENDING_REVIEW]
    return pending


# --- the assembler ------------------------------------------------------------------------------


@ASSEMBLERS
def test_the_staff_ui_never_asks_the_assembler(
    app: Flask, people: None, clock: FixedClock, assembler: str
) -> None:
    browser = sign_in(app, assembler)
    form = {
        "key": KEY,
        "title": "November",
        "environment": "production",
        "app-payments-api": "on",
        "app-payments-api-version": "8",
    }
    preview = post(browser, "/packages/new", {**form, "action": "plan"})
    assert preview.status_code == 200
    if assembler == RAJ:
        assert f"not asked (separation of duties): {RAJ}" in preview.text
    assert f'data-email="{assembler}"' not in preview.text
    created = post(browser, "/packages/new", {**form, "action": "submit"})
    assert created.status_code == 302, created.text
    db.session.remove()
    assert db.session.scalar(sa.select(Package.assembled_by).where(Package.key == KEY)) == assembler
    everyone = asked()
    assert {ANA, *KEY_USERS} <= everyone, "the others are asked"
    assert assembler not in everyone
    assert emailed_to(assembler) == []


@ASSEMBLERS
def test_a_package_assembled_through_the_api_asks_nothing_of_its_assembler(
    app: Flask, people: None, clock: FixedClock, assembler: str
) -> None:
    with unit_of_work(db.session()) as session:
        issued = tokens.create_token(
            session, name="ci", scopes=tokens.SCOPES, owner=assembler, clock=clock
        )
    api = Api(app, issued.secret)
    body = {
        "key": KEY,
        "title": "November",
        "environment": "production",
        "applications": [{"application": "payments-api", "version": "8"}],
    }
    assert api.post("/api/v1/packages", json=body).status_code == 201
    assert api.post(f"/api/v1/packages/{KEY}/submit").status_code == 200
    assert (api.get(f"/api/v1/packages/{KEY}").json or {})["assembled_by"] == assembler
    everyone = asked()
    assert {ANA, *KEY_USERS} <= everyone
    assert assembler not in everyone
    assert emailed_to(assembler) == []
    waiting = (api.get(f"/api/v1/packages/{KEY}/gate").json or {})["waiting_on"]
    assert ANA in waiting
    assert assembler not in waiting


@pytest.mark.parametrize("who", [RAJ, MANAGER, OUTSIDER])
def test_asking_for_a_fresh_link_creates_no_request(
    app: Flask, people: None, clock: FixedClock, who: str
) -> None:
    """The assembler (listed or not) and an outsider ask for "their" link: the same answer as
    everyone gets, and nothing is issued; a real signer asking gets a new link."""
    assemble(app, clock, assembler=RAJ if who == RAJ else MANAGER)
    browser = client(app)
    before = evidence_of_deciding()
    links_before = db.session.scalar(sa.select(sa.func.count()).select_from(SignoffLink))
    answer = post(browser, "/s/resend", {"email": who, "package": KEY})
    assert answer.status_code == 200
    assert "If that address has something to sign" in answer.text
    assert who not in asked()
    assert emailed_to(who) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignoffLink)) == links_before
    assert evidence_of_deciding() == before
    # The control: the same form for a real signer issues a fresh link (once the one sent at
    # submit is old enough to be replaced).
    clock.advance(RESEND_LIMIT.keep_newer_than)
    post(browser, "/s/resend", {"email": ANA, "package": KEY})
    assert emailed_to(ANA).count("signoff_request") == 2


@ASSEMBLERS
def test_a_link_naming_the_assembler_is_refused(
    app: Flask, people: None, clock: FixedClock, assembler: str
) -> None:
    """Defence in depth: were a request ever to reach the assembler (say an issuing bug hands
    them ana's request on artifacts-from-ci, an item raj may sign), its link still refuses."""
    assemble(app, clock, assembler=assembler)
    with unit_of_work(db.session()) as session:
        request = session.scalar(
            sa.select(SignoffRequest).where(
                SignoffRequest.signer == ANA, SignoffRequest.item_id == "artifacts-from-ci"
            )
        )
        assert request is not None
        request.signer = assembler
        session.flush()
        email_link(app, session, clock, assembler)
    forged_id = request.id
    path = link_path(assembler)
    browser = client(app)
    before = evidence_of_deciding()
    refused_page(browser.get(path), 410, "no longer a signer of this release")
    attempt = {
        "csrf_token": fresh_csrf(browser),
        f"r{forged_id}-decision": "pass",
        f"r{forged_id}-evidence": EVIDENCE,
    }
    refused_page(browser.post(path, data=attempt), 410, "no longer a signer of this release")
    assert evidence_of_deciding() == before
    assert pending_ids(signer=assembler) == [forged_id], "the request is still open, unsigned"
    # And through the service the link calls, the same refusal, naming the rule.
    with pytest.raises(PermissionDenied, match="assembled a package cannot sign"):
        packages.record_signoff(
            db.session(),
            forged_id,
            Decision("item", "pass", evidence=EVIDENCE),
            clock=clock,
        )
    db.session.rollback()
    assert evidence_of_deciding() == before


# --- key users ------------------------------------------------------------------------------------


def test_an_engineers_link_cannot_validate_for_the_key_users(
    app: Flask, people: None, clock: FixedClock
) -> None:
    assemble(app, clock)
    path = link_path(RAJ)
    browser = client(app)
    page = browser.get(path)
    assert "-scenario-" not in page.text, "raj's page offers no key-user validation"
    validation = pending_ids(kind="key_user")
    assert len(validation) == len(KEY_USERS)
    injected: dict[str, str] = {}
    for request_id in validation:
        injected[f"r{request_id}-decision"] = "confirmed"
        injected[f"r{request_id}-comment"] = "works for me"
        injected.update({f"r{request_id}-scenario-{i}": "on" for i in range(3)})
    before = evidence_of_deciding()
    # Only the key users' requests: nothing of raj's own is decided, so nothing is recorded.
    alone = browser.post(path, data={"csrf_token": csrf(page.text), **injected})
    refused_page(alone, 422, "Choose a decision.")
    assert evidence_of_deciding() == before
    # Raj's own decisions with them: his items are recorded, the validation is not.
    done = sign_link(browser, path, injected)
    assert done.status_code == 200, done.text
    recorded = recorded_signoffs()
    assert {(s.signer, s.kind) for s in recorded} == {(RAJ, "item")}
    assert {s.item_id for s in recorded} == RAJ_ITEMS
    assert pending_ids(kind="key_user") == validation
    blocker = next(b for b in gate(clock).blockers if b.code == gate_rules.USER_VALIDATION_PENDING)
    assert set(blocker.waiting_on) == set(KEY_USERS)


def test_a_key_user_who_signs_technical_items_cannot_validate(
    app: Flask, people: None, clock: FixedClock, tmp_path: Path
) -> None:
    """settlement-lead also signs dashboards-alerts in this version: they are asked for that item
    only, and nothing they send counts as user validation."""
    dual = KEY_USERS[1]
    directory = checklist_dir(tmp_path)
    source = directory / "payments-api.yaml"
    text = source.read_text(encoding="utf-8").replace(
        "signers: [sre-oncall@example.com]", f"signers: [sre-oncall@example.com, {dual}]"
    )
    source.write_text(text.replace("version: 7", "version: 8", 1), encoding="utf-8")
    sync_and_approve(directory, clock)
    assemble(app, clock)
    db.session.remove()
    mine = db.session.execute(
        sa.select(SignoffRequest.kind, SignoffRequest.item_id).where(SignoffRequest.signer == dual)
    ).all()
    assert [tuple(r) for r in mine] == [("item", "dashboards-alerts")]
    path = link_path(dual)
    browser = client(app)
    page = browser.get(path)
    (own,) = request_prefixes(page.text)
    before = evidence_of_deciding()
    # Their item request answered as a key user would: not a decision an item can take.
    as_key_user = {
        "csrf_token": csrf(page.text),
        f"{own}-decision": "confirmed",
        **{f"{own}-scenario-{i}": "on" for i in range(3)},
    }
    refused_page(browser.post(path, data=as_key_user), 422, "decision must be one of")
    assert evidence_of_deciding() == before
    # The other key user's validation request injected next to their own item: ignored.
    (other,) = pending_ids(kind="key_user")
    injected = {
        f"r{other}-decision": "confirmed",
        **{f"r{other}-scenario-{i}": "on" for i in range(3)},
    }
    assert sign_link(browser, path, injected).status_code == 200
    assert [(s.signer, s.kind) for s in recorded_signoffs()] == [(dual, "item")]
    assert pending_ids(kind="key_user") == [other]
    user_codes = (gate_rules.USER_VALIDATION_PENDING, gate_rules.USER_QUORUM_UNREACHABLE)
    validation = [b for b in gate(clock).blockers if b.code in user_codes]
    assert validation
    assert all(dual not in b.waiting_on for b in validation)


# --- once per item --------------------------------------------------------------------------------


def test_a_second_link_of_the_same_person_cannot_sign_again(
    app: Flask, people: None, clock: FixedClock
) -> None:
    assemble(app, clock)
    first = link_path(RAJ)
    manager = sign_in(app, MANAGER)
    assert post(manager, f"/packages/{KEY}/remind").status_code == 302  # a fresh link for all
    second = link_path(RAJ)
    assert second != first
    browser = client(app)
    before = evidence_of_deciding()
    refused_page(browser.get(first), 410, "a new link was emailed")
    assert evidence_of_deciding() == before
    assert sign_link(browser, second).status_code == 200
    after = evidence_of_deciding()
    mine = [s for s in recorded_signoffs() if s.signer == RAJ]
    for path in (second, first):
        response = browser.post(path, data={"csrf_token": fresh_csrf(browser)})
        assert response.status_code == 410, path
        # The first link was replaced by the reminder, not by a change of the release.
        assert "A newer link was sent" in response.text or "Already answered" in response.text
    post(browser, "/s/resend", {"email": RAJ, "package": KEY})
    assert link_path(RAJ) == second, "nothing left to sign: no third link"
    assert evidence_of_deciding() == after
    assert sorted(str(s.item_id) for s in mine) == sorted(RAJ_ITEMS)
    # Raj counts once towards the quorum of 2 of migrations-reversible.
    waiting = item_blocker(gate(clock), MIGRATIONS)
    assert waiting.code == gate_rules.ITEM_PENDING
    assert set(waiting.waiting_on) == {"li@example.com", "tomas@example.com"}


ROUNDS = 5


def link_against_reminder(app: Flask, manager: FlaskClient, key: str) -> dict[str, Any]:
    """Raj sends his link at the very moment the manager sends everyone a fresh one."""
    first = link_path(RAJ)
    raj = client(app)
    form = positive_form(raj.get(first).text)
    reminder = {"csrf_token": fresh_csrf(manager)}
    answers: dict[str, Any] = {"first": first, "raj": raj}

    def send(browser: FlaskClient, path: str, data: dict[str, str], name: str) -> None:
        answers[name] = browser.post(path, data=data).status_code

    results = race(
        app,
        [
            lambda: send(raj, first, form, "link"),
            lambda: send(manager, f"/packages/{key}/remind", reminder, "remind"),
        ],
    )
    assert results == [None, None], results
    return answers


def test_a_link_racing_a_reminder_for_the_same_person_signs_once(
    app: Flask, people: None, clock: FixedClock
) -> None:
    """Raj sends his link while the manager's reminder replaces it with a new one: whichever wins,
    after raj also uses the newest link each of his items is signed exactly once."""
    manager = sign_in(app, MANAGER)
    for round_ in range(ROUNDS):
        key = f"{KEY}-{round_}"
        assemble(app, clock, key)
        answers = link_against_reminder(app, manager, key)
        assert answers["remind"] == 302
        assert answers["link"] in (200, 410), answers
        newest = link_path(RAJ)
        if newest != answers["first"]:  # the reminder won: the link it replaced was refused
            assert answers["link"] == 410, answers
            assert sign_link(answers["raj"], newest).status_code == 200
        db.session.remove()
        package_id = db.session.scalar(sa.select(Package.id).where(Package.key == key))
        items = list(
            db.session.scalars(
                sa.select(Signoff.item_id).where(
                    Signoff.package_id == package_id, Signoff.signer == RAJ
                )
            )
        )
        db.session.remove()
        assert sorted(map(str, items)) == sorted(RAJ_ITEMS), (round_, answers, items)


def test_a_person_asked_twice_for_one_item_counts_once(
    app: Flask, people: None, clock: FixedClock
) -> None:
    """Two requests reach raj for migrations-reversible (as if issued twice): he answers both,
    through two links, and the gate — also as the API reports it — still counts him once."""
    assemble(app, clock)
    browser = client(app)
    assert sign_link(browser, link_path(RAJ)).status_code == 200
    with unit_of_work(db.session()) as session:
        token = tokens.create_token(
            session, name="ci", scopes=(tokens.SCOPE_GATE_READ,), owner=None, clock=clock
        ).secret
    api = Api(app, token)
    before = api.get(f"/api/v1/packages/{KEY}/gate").json
    assert before is not None
    with unit_of_work(db.session()) as session:
        signed = session.scalar(
            sa.select(SignoffRequest).where(
                SignoffRequest.signer == RAJ, SignoffRequest.item_id == MIGRATIONS
            )
        )
        assert signed is not None
        session.add(
            SignoffRequest(
                package_id=signed.package_id,
                package_application_id=signed.package_application_id,
                kind=signed.kind,
                section_id=signed.section_id,
                item_id=signed.item_id,
                signer=RAJ,
                revision=signed.revision,
                state="pending",
                created_at=clock.now(),
            )
        )
        session.flush()
        email_link(app, session, clock, RAJ)
    assert sign_link(browser, link_path(RAJ)).status_code == 200
    on_item = [s for s in recorded_signoffs() if s.signer == RAJ and s.item_id == MIGRATIONS]
    assert len(on_item) == 2, "both answers are on record"
    after = api.get(f"/api/v1/packages/{KEY}/gate").json
    assert after is not None
    assert after["progress"] == before["progress"]
    (blocker,) = [b for b in after["blockers"] if b["item"] == MIGRATIONS]
    assert blocker["code"] == gate_rules.ITEM_PENDING
    assert set(blocker["waiting_on"]) == {"li@example.com", "tomas@example.com"}
    assert "1 of 2" in blocker["message"], blocker["message"]


# --- governance: never approved by its author -----------------------------------------------------

AUTHOR_SPELLINGS = pytest.mark.parametrize(
    "author", [BOARD, "  Release-Board@Example.COM "], ids=["as-listed", "other-case-and-spaces"]
)


def review_path(reviewer: str) -> str:
    db.session.remove()
    token = emailed("review", "review_request")[reviewer]
    db.session.remove()
    return f"/review/{token}"


@AUTHOR_SPELLINGS
def test_the_author_cannot_approve_through_the_review_link(
    app: Flask, people: None, runner: FlaskCliRunner, tmp_path: Path, author: str
) -> None:
    author_a_new_version(runner, tmp_path, author)
    path = review_path(BOARD)
    browser = client(app)
    page = browser.get(path)
    assert page.status_code == 200
    assert 'data-testid="author-note"' in page.text
    before = evidence_of_deciding()
    for action, extra in (
        (governance.APPROVE, {}),
        (governance.REAFFIRM, {}),
        ("APPROVE", {}),
        (governance.APPROVE, {"reviewer": UX_LEAD, "author": UX_LEAD, "state": "approved"}),
    ):
        form = {"csrf_token": csrf(page.text), "action": action, "consulted": "Dana", **extra}
        response = browser.post(path, data=form)
        assert response.status_code == 422, (action, response.text)
        expected = "another reviewer must approve it" if action == "approve" else "Choose approve"
        assert expected in response.text, action
        assert evidence_of_deciding() == before, action
    version = pending_version()
    assert version.state == governance.PENDING_REVIEW
    assert version.author == BOARD
    db.session.remove()
    assert db.session.scalar(sa.select(ReviewLink.state).where(ReviewLink.reviewer == BOARD)) == (
        "active"
    ), "the refusal does not use up the link: the author may still request changes"
    assert emailed_to("payments-team@example.com") == []


@AUTHOR_SPELLINGS
def test_the_author_cannot_approve_from_the_command_line(
    app: Flask, people: None, runner: FlaskCliRunner, tmp_path: Path, author: str
) -> None:
    """The version is synced as BOARD's; the reviewer is given as `author` spells it."""
    author_a_new_version(runner, tmp_path, BOARD)
    before = evidence_of_deciding()
    result = runner.invoke(
        cli,
        [
            "checklists",
            "review",
            "payments-api",
            "--version",
            "8",
            "--approve",
            "--reviewer",
            author,
            "--consulted",
            "Dana and Malik",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "authored version 8 of payments-api; another reviewer must approve it" in result.output
    assert evidence_of_deciding() == before
    assert pending_version().state == governance.PENDING_REVIEW


def test_an_author_is_refused_where_another_reviewer_may_approve(
    app: Flask, people: None, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    """storefront-web has two reviewers: its author is refused on every path, the other approves
    through their own link — the refusal is about authorship, not about the version."""
    author_a_new_version(runner, tmp_path, UX_LEAD, "storefront-web")
    before = evidence_of_deciding()
    with pytest.raises(PermissionDenied, match="another reviewer must approve it"):
        checklists.review_version(
            db.session(),
            application="storefront-web",
            version=13,
            action=governance.APPROVE,
            reviewer=UX_LEAD,
            consulted="x",
            clock=clock,
        )
    db.session.rollback()
    browser = client(app)
    page = browser.get(review_path(UX_LEAD))
    form = {"csrf_token": csrf(page.text), "action": governance.APPROVE, "consulted": "x"}
    assert browser.post(review_path(UX_LEAD), data=form).status_code == 422
    assert evidence_of_deciding() == before
    other = review_path(BOARD)
    page = browser.get(other)
    form = {"csrf_token": csrf(page.text), "action": governance.APPROVE, "consulted": "x"}
    assert browser.post(other, data=form).status_code == 200
    assert pending_version_state("storefront-web", 13) == governance.APPROVED


def pending_version_state(application: str, version: int) -> str:
    db.session.remove()
    state = checklists.get_version(db.session(), application, version).state
    db.session.remove()
    return state


# --- no other way in: every staff form, every API write ---------------------------------------

ATTACKERS = {
    "assembler-listed-as-signer": (RAJ, users.RELEASE_MANAGER),
    "assembler-not-a-signer": (MANAGER, users.RELEASE_MANAGER),
    "admin-not-a-key-user": (ADMIN, users.ADMIN),
    "author-of-the-pending-version": (BOARD, users.GOVERNANCE_REVIEWER),
}


@pytest.fixture
def targets(
    app: Flask, people: None, clock: FixedClock, runner: FlaskCliRunner, tmp_path: Path
) -> dict[str, Any]:
    """Raj's package in review, the manager's package in review, and payments-api v8 written by
    its only governance reviewer, waiting for review."""
    assemble(app, clock, assembler=RAJ)
    assemble(app, clock, f"{KEY}-m", assembler=MANAGER)
    author_a_new_version(runner, tmp_path, BOARD)
    return {"application": "payments-api", "version": 8, "finding_id": 1, "message_id": 1}


@pytest.mark.parametrize("attacker", list(ATTACKERS))
def test_no_staff_form_records_a_decision_or_an_approval(
    app: Flask, targets: dict[str, Any], attacker: str
) -> None:
    """The staff UI has no sign-off or approval form: every staff POST, sent every decision and
    review field there is for every pending request, records none of them."""
    who, role = ATTACKERS[attacker]
    browser = sign_in(app, who)
    staff = {r.endpoint for r in staff_rules(app)}
    # Cancelling last, so every other form meets a package still in review.
    rules = sorted(
        (r for r in browser_post_rules(app) if r.endpoint in staff),
        key=lambda r: r.endpoint.endswith("cancel"),
    )
    assert rules
    before = evidence_of_deciding()
    for key in (KEY, f"{KEY}-m"):
        for rule in rules:
            response = browser.post(
                url(app, rule, {**targets, "key": key}),
                data={**decisions_for_everyone(who), "csrf_token": fresh_csrf(browser)},
            )
            assert response.status_code < 500, (rule.rule, response.text)
            refused = role not in access.ROUTE_ROLES[rule.endpoint]
            assert (response.status_code == 403) == refused, (rule.rule, response.status_code)
    assert evidence_of_deciding() == before


@pytest.mark.parametrize("attacker", list(ATTACKERS))
def test_no_api_operation_records_a_decision_or_an_approval(
    app: Flask, targets: dict[str, Any], clock: FixedClock, attacker: str
) -> None:
    """The API has no sign-off or review operation: no write operation declares such a field,
    and every one of them, sent a sign-off and a review with the attacker's own token, records
    neither (bodies with undeclared fields are refused as a whole)."""
    who, _ = ATTACKERS[attacker]
    # Cancelling last, so every other operation meets a package still in review.
    operations = sorted(write_operations(), key=lambda o: o.operation_id == "cancelPackage")
    deciding = {"decision", "signer", "scenarios_confirmed", "reviewer", "consulted", "outcome"}
    for operation in operations:
        assert not operation.declared & deciding, operation
        assert not operation.path.startswith("/checklists"), f"{operation} writes checklists"
    with unit_of_work(db.session()) as session:
        # Every scope whatever the role, as a token issued before owners were checked may hold.
        secret = legacy_token(
            session, name=f"own-{attacker}", scopes=tokens.SCOPES, owner=who, clock=clock
        )
    api = Api(app, secret)
    body = decisions_for_everyone(who)
    before = evidence_of_deciding()
    for key in (KEY, f"{KEY}-m"):
        for operation in operations:
            response = api.call(operation.method.upper(), operation.url(key=key), json=body)
            if operation.body_schema is not None:
                error = assert_envelope(response, 422, "validation_failed")
                assert "decision" in str(error["details"])
            assert evidence_of_deciding() == before, operation
