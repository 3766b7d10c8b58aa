"""Release packages on a real database: submit, sign, edit (revisions), cancel, release."""

from __future__ import annotations

import json
from datetime import date

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, PackageRevision, Signoff, SignoffRequest
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from gatekeeper.domain.signoff import Decision
from gatekeeper.services import checklists, packages
from gatekeeper.services.checklists import checklist_of
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES
from tests.support.generated import positive_decision

MANAGER = "release-manager@example.com"
KEY = "2026.11-r3"
EVIDENCE = "https://ci.example.com/runs/1"


@pytest.fixture
def approved(app: Flask, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        checklists.sync_checklists(
            session, SAMPLES, clock=clock, declared_authors=[CHECKLIST_AUTHOR]
        )
        for slug, version, reviewer in (
            ("payments-api", 7, "release-board@example.com"),
            ("storefront-web", 12, "release-board@example.com"),
        ):
            checklists.review_version(
                session,
                application=slug,
                version=version,
                action="approve",
                reviewer=reviewer,
                consulted="key users, by call",
                clock=clock,
            )


def spec(*apps: tuple[str, str], key: str = KEY) -> packages.PackageSpec:
    return packages.PackageSpec(
        key=key,
        title="November release",
        environment="production",
        planned_for=None,
        applications=tuple(packages.ApplicationSpec(a, v, f"{a} changes") for a, v in apps),
    )


def create_and_submit(clock: FixedClock, *apps: tuple[str, str], assembler: str = MANAGER) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(session, spec(*apps), assembler=assembler, clock=clock)
        packages.submit_package(session, KEY, actor=assembler, clock=clock)


def evaluate(clock: FixedClock) -> gate.GateResult:
    return packages.evaluate_gate(db.session, KEY, clock=clock, overdue_policy="block")


def sign_everything(clock: FixedClock, application: str | None = None) -> int:
    signed = 0
    with unit_of_work(db.session) as session:
        for request in packages.pending_requests(session, KEY):
            slug = request.package_application.application.slug
            if application and slug != application:
                continue
            checklist = checklist_of(request.package_application.checklist_version)  # type: ignore[arg-type]
            if request.kind == "item":
                decision = Decision("item", "pass", evidence=EVIDENCE)
            else:
                count = len(checklist.user_validation.scenarios)
                decision = Decision(
                    "key_user", "confirmed", scenarios_confirmed=tuple(range(count))
                )
            packages.record_signoff(session, request.id, decision, clock=clock)
            signed += 1
    return signed


def test_submit_pins_approved_checklists_and_requests_every_signer(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    requests = packages.pending_requests(db.session, KEY)
    item_requests = {(r.item_id, r.signer) for r in requests if r.kind == "item"}
    assert ("artifacts-from-ci", "ana@example.com") in item_requests
    assert ("artifacts-from-ci", "raj@example.com") in item_requests
    assert {r.signer for r in requests if r.kind == "key_user"} == {
        "settlement-lead@example.com",
        "refunds-desk@example.com",
    }
    assert len(requests) == 14  # 12 (item, signer) pairs + 2 key users
    result = evaluate(clock)
    assert result.status == gate.PENDING
    assert result.revision == 1
    assert result.required == 10  # item quorums 1+2, 1+2, 1+1, plus "all" of 2 key users


def test_application_without_approved_checklist_blocks_with_a_clear_blocker(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), ("identity-platform", "4.9"))
    result = evaluate(clock)
    assert result.status == gate.BLOCKED
    blocker = next(b for b in result.blockers if b.code == gate.NO_APPROVED_CHECKLIST)
    assert blocker.application == "identity-platform"
    assert "no approved checklist" in blocker.message


def test_all_signed_opens_the_gate_and_release_needs_the_digest(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), ("storefront-web", "2026.11"))
    sign_everything(clock)
    result = evaluate(clock)
    assert result.status == gate.OPEN, result.blockers
    assert result.signed == result.required
    with pytest.raises(Conflict, match="stale digest"), unit_of_work(db.session) as session:
        packages.release_package(
            session,
            KEY,
            digest="sha256:" + "0" * 64,
            actor="ci",
            clock=clock,
            overdue_policy="block",
        )
    with unit_of_work(db.session) as session:
        package, at_release = packages.release_package(
            session, KEY, digest=result.digest, actor="ci", clock=clock, overdue_policy="block"
        )
        assert package.state == "released"
        assert at_release.digest == result.digest
    with pytest.raises(Conflict), unit_of_work(db.session) as session:
        packages.release_package(
            session, KEY, digest=result.digest, actor="ci", clock=clock, overdue_policy="block"
        )


def test_release_is_refused_while_pending(app: Flask, approved: None, clock: FixedClock) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    result = evaluate(clock)
    with (
        pytest.raises(Conflict, match=r"gate of 2026\.11-r3 is pending") as raised,
        unit_of_work(db.session) as session,
    ):
        packages.release_package(
            session, KEY, digest=result.digest, actor="ci", clock=clock, overdue_policy="block"
        )
    assert raised.value.details["gate"]["blockers"]


def test_a_request_is_single_use(app: Flask, approved: None, clock: FixedClock) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    request_id = next(
        r.id for r in packages.pending_requests(db.session, KEY) if r.item_id == "rollback-plan"
    )
    with unit_of_work(db.session) as session:
        packages.record_signoff(session, request_id, Decision("item", "pass"), clock=clock)
    with pytest.raises(Conflict, match="already signed"), unit_of_work(db.session) as session:
        packages.record_signoff(
            session, request_id, Decision("item", "fail", comment="x"), clock=clock
        )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Signoff)) == 1


def test_invalid_decisions_record_nothing(app: Flask, approved: None, clock: FixedClock) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    requests = packages.pending_requests(db.session, KEY)
    url_item = next(r.id for r in requests if r.item_id == "artifacts-from-ci")
    key_user = next(r.id for r in requests if r.kind == "key_user")
    cases = [
        (url_item, Decision("item", "pass", evidence="javascript:alert(1)"), "http"),
        (url_item, Decision("item", "not_applicable"), "reason is required"),
        (url_item, Decision("key_user", "confirmed"), "asks for a item decision"),
        (key_user, Decision("key_user", "confirmed", scenarios_confirmed=(0,)), "every scenario"),
        (key_user, Decision("key_user", "problem"), "describe the problem"),
    ]
    for request_id, decision, message in cases:
        with pytest.raises(ValidationFailed, match=message), unit_of_work(db.session) as session:
            packages.record_signoff(session, request_id, decision, clock=clock)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Signoff)) == 0
    assert all(r.state == "pending" for r in packages.pending_requests(db.session, KEY))


def test_the_assembler_gets_no_request_and_cannot_sign(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), assembler="ana@example.com")
    requests = packages.pending_requests(db.session, KEY)
    assert "ana@example.com" not in {r.signer for r in requests}
    forged = requests[0]
    forged.signer = "ana@example.com"
    db.session.flush()
    with pytest.raises(PermissionDenied, match="assembled a package cannot sign"):
        packages.record_signoff(db.session, forged.id, Decision("item", "pass"), clock=clock)
    db.session.rollback()


def test_a_problem_reported_by_a_key_user_blocks_with_their_words(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    request = next(r for r in packages.pending_requests(db.session, KEY) if r.kind == "key_user")
    with unit_of_work(db.session) as session:
        packages.record_signoff(
            session,
            request.id,
            Decision("key_user", "problem", comment="Settlement totals are off by one day"),
            clock=clock,
        )
    result = evaluate(clock)
    assert result.status == gate.BLOCKED
    blocker = next(b for b in result.blockers if b.code == gate.USER_PROBLEM_REPORTED)
    assert "Settlement totals are off by one day" in blocker.message


def test_editing_in_review_bumps_revision_and_only_changed_apps_go_stale(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), ("storefront-web", "2026.11"))
    sign_everything(clock)
    assert evaluate(clock).status == gate.OPEN
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                applications=(
                    packages.ApplicationSpec("payments-api", "7.4.1", "payments-api changes"),
                    packages.ApplicationSpec("storefront-web", "2026.11", "storefront-web changes"),
                )
            ),
            actor=MANAGER,
            clock=clock,
        )
    result = evaluate(clock)
    assert result.revision == 2
    assert result.status == gate.PENDING
    progress = {a.application: a for a in result.applications}
    assert progress["payments-api"].signed == 0
    assert progress["payments-api"].changed_in_revision == 2
    assert progress["storefront-web"].signed == progress["storefront-web"].required
    assert progress["storefront-web"].carried_forward == progress["storefront-web"].required
    stale = db.session.scalar(
        sa.select(sa.func.count()).select_from(Signoff).where(Signoff.stale_since_revision == 2)
    )
    assert stale is not None
    assert stale > 0
    new_requests = packages.pending_requests(db.session, KEY)
    assert {r.package_application.application.slug for r in new_requests} == {"payments-api"}
    assert {r.revision for r in new_requests} == {2}
    history = db.session.scalars(
        sa.select(PackageRevision).order_by(PackageRevision.revision)
    ).all()
    assert [h.revision for h in history] == [1, 2]
    assert json.loads(history[1].changes) == {
        "changed": {"payments-api": {"version": ["7.4.0", "7.4.1"]}},
        "carried_forward": ["storefront-web"],
    }
    sign_everything(clock, "payments-api")
    assert evaluate(clock).status == gate.OPEN


def test_a_stale_request_cannot_be_used(app: Flask, approved: None, clock: FixedClock) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    old = packages.pending_requests(db.session, KEY)[0].id
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", "7.4.1"),)
            ),
            actor=MANAGER,
            clock=clock,
        )
    assert db.session.get(SignoffRequest, old).state == "stale"  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="already stale"), unit_of_work(db.session) as session:
        packages.record_signoff(
            session, old, Decision("item", "pass", evidence=EVIDENCE), clock=clock
        )


def test_removing_and_re_adding_an_application(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), ("storefront-web", "2026.11"))
    only_payments = packages.PackageChanges(
        applications=(packages.ApplicationSpec("payments-api", "7.4.0", "payments-api changes"),)
    )
    with unit_of_work(db.session) as session:
        packages.edit_package(session, KEY, only_payments, actor=MANAGER, clock=clock)
    result = evaluate(clock)
    assert [a.application for a in result.applications] == ["payments-api"]
    both = packages.PackageChanges(
        applications=(
            packages.ApplicationSpec("payments-api", "7.4.0", "payments-api changes"),
            packages.ApplicationSpec("storefront-web", "2026.11.1"),
        )
    )
    with unit_of_work(db.session) as session:
        packages.edit_package(session, KEY, both, actor=MANAGER, clock=clock)
    result = evaluate(clock)
    assert result.revision == 3
    assert [a.application for a in result.applications] == ["payments-api", "storefront-web"]
    with (
        pytest.raises(ValidationFailed, match="at least one application"),
        unit_of_work(db.session) as session,
    ):
        packages.edit_package(
            session, KEY, packages.PackageChanges(applications=()), actor=MANAGER, clock=clock
        )


def test_editing_a_draft_does_not_create_revisions(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session, spec(("payments-api", "1")), assembler=MANAGER, clock=clock
        )
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                title="Renamed", applications=(packages.ApplicationSpec("storefront-web", "2"),)
            ),
            actor=MANAGER,
            clock=clock,
        )
    package = packages.get_package(db.session, KEY)
    assert (package.title, package.revision, package.state) == ("Renamed", 0, "draft")
    assert [pa.application.slug for pa in package.applications] == ["storefront-web"]
    assert evaluate(clock).blockers[0].code == gate.PACKAGE_NOT_SUBMITTED


def test_a_new_environment_asks_every_sign_off_again(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"), ("storefront-web", "2026.11"))
    sign_everything(clock)
    signed_before = evaluate(clock)
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session, KEY, packages.PackageChanges(environment="staging"), actor=MANAGER, clock=clock
        )
    result = evaluate(clock)
    assert (result.revision, result.status, result.signed) == (2, gate.PENDING, 0)
    assert result.digest != signed_before.digest
    assert {a.carried_forward for a in result.applications} == {0}
    requested = {
        r.package_application.application.slug for r in packages.pending_requests(db.session, KEY)
    }
    assert requested == {"payments-api", "storefront-web"}
    history = db.session.scalars(sa.select(PackageRevision).order_by(PackageRevision.id)).all()
    assert json.loads(history[-1].changes) == {
        "environment": ["production", "staging"],
        "changed": {},
        "carried_forward": [],
    }


def test_editing_a_change_summary_makes_a_revision_that_says_so(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", "7.4.0", "Refund queue"),)
            ),
            actor=MANAGER,
            clock=clock,
        )
    history = db.session.scalars(sa.select(PackageRevision).order_by(PackageRevision.id)).all()
    assert json.loads(history[-1].changes)["changed"] == {
        "payments-api": {"change_summary": ["payments-api changes", "Refund queue"]}
    }
    assert evaluate(clock).revision == 2


def test_title_and_date_edits_in_review_keep_every_sign_off_and_are_audited(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    sign_everything(clock)
    before = evaluate(clock)
    with unit_of_work(db.session) as session:
        packages.edit_package(
            session,
            KEY,
            packages.PackageChanges(title="Renamed", planned_for=date(2026, 12, 24)),
            actor=MANAGER,
            clock=clock,
        )
    assert evaluate(clock) == before
    history = db.session.scalars(sa.select(PackageRevision).order_by(PackageRevision.id)).all()
    assert (history[-1].revision, history[-1].signed) == (1, False)
    edited = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "package.edited")
    ).all()
    assert [json.loads(e.details)["details"] for e in edited] == [
        {"title": ["November release", "Renamed"], "planned_for": [None, "2026-12-24"]}
    ]


def test_an_edit_of_a_draft_title_is_audited(app: Flask, approved: None, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session, spec(("payments-api", "1")), assembler=MANAGER, clock=clock
        )
        packages.edit_package(
            session, KEY, packages.PackageChanges(title="Renamed"), actor=MANAGER, clock=clock
        )
    edited = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "package.edited")
    ).all()
    assert [json.loads(e.details)["details"]["title"][1] for e in edited] == ["Renamed"]


def test_cancel_revokes_open_requests(app: Flask, approved: None, clock: FixedClock) -> None:
    create_and_submit(clock, ("payments-api", "7.4.0"))
    with unit_of_work(db.session) as session:
        packages.cancel_package(session, KEY, actor=MANAGER, clock=clock)
    assert packages.pending_requests(db.session, KEY) == []
    assert evaluate(clock).status == gate.BLOCKED
    with (
        pytest.raises(Conflict, match="cancelled cannot be submitted"),
        unit_of_work(db.session) as session,
    ):
        packages.submit_package(session, KEY, actor=MANAGER, clock=clock)


@pytest.mark.parametrize(
    ("applications", "message"),
    [
        ((("nope", "1"),), "unknown application"),
        ((("payments-api", "1"), ("payments-api", "2")), "listed twice"),
        ((("payments-api", " "),), "version of payments-api is required"),
    ],
)
def test_bad_package_specs_are_refused(
    app: Flask,
    approved: None,
    clock: FixedClock,
    applications: tuple[tuple[str, str], ...],
    message: str,
) -> None:
    with pytest.raises(ValidationFailed, match=message), unit_of_work(db.session) as session:
        packages.create_package(session, spec(*applications), assembler=MANAGER, clock=clock)


def test_duplicate_and_malformed_keys(app: Flask, approved: None, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session, spec(("payments-api", "1")), assembler=MANAGER, clock=clock
        )
    with pytest.raises(Conflict, match="already exists"), unit_of_work(db.session) as session:
        packages.create_package(
            session, spec(("payments-api", "1")), assembler=MANAGER, clock=clock
        )
    with pytest.raises(ValidationFailed, match="package key"), unit_of_work(db.session) as session:
        packages.create_package(
            session, spec(("payments-api", "1"), key="../etc"), assembler=MANAGER, clock=clock
        )
    with pytest.raises(NotFound):
        packages.get_package(db.session, "missing")


def test_submitting_an_empty_package_is_refused(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(session, spec(), assembler=MANAGER, clock=clock)
    with (
        pytest.raises(ValidationFailed, match="at least one application"),
        unit_of_work(db.session) as session,
    ):
        packages.submit_package(session, KEY, actor=MANAGER, clock=clock)


def test_a_transaction_takes_a_package_lock_once_and_the_next_takes_it_again(
    app: Flask, approved: None, clock: FixedClock
) -> None:
    """Sign-offs batched in one transaction re-read the package only when they first lock it."""
    create_and_submit(clock, ("payments-api", "7.4.0"))
    package_id = packages.get_package(db.session, KEY).id
    for _ in range(2):
        with unit_of_work(db.session) as session:
            assert packages.lock_package(session, package_id) is True
            assert packages.lock_package(session, package_id) is False
    with unit_of_work(db.session) as session:
        requests = packages.pending_requests(session, KEY)
        for request in requests:
            packages.record_signoff(session, request.id, positive_decision(request), clock=clock)
    assert evaluate(clock).status == gate.OPEN
