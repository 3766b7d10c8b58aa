"""Walking the staff web UI from the URL map: the test data every role × route walk uses, the
rules that need a staff session, real URLs for them, and what a refused request must not change.

Shared by the functional page checks (tests/functional/test_web_access.py) and the security
suite's authorization, separation-of-duties and mass-assignment walks (tests/security)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    Absence,
    Application,
    Finding,
    OutboxMessage,
    Package,
    ScenarioProposal,
    SignInLink,
    Signoff,
    SignoffLink,
    User,
    WebhookSubscription,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import learning_reviews
from gatekeeper.web import access
from tests.conftest import SAMPLES
from tests.functional.api_helpers import create_package, sync_and_approve
from tests.functional.web_helpers import MANAGER, add_staff, fresh_csrf
from tests.support.mail import dead_letter

KEY = "2026.11-own"  # in review, assembled by web_helpers.MANAGER
DRAFT = "2026.11-draft"  # a draft of the same manager
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def add_proposal(
    session: Session, clock: FixedClock, scenario: str = "Export refunds as CSV"
) -> ScenarioProposal:
    """An open scenario proposal on payments-api (its reviewer: governance.BOARD)."""
    proposal = ScenarioProposal(
        application_id=session.scalar(
            sa.select(Application.id).where(Application.slug == "payments-api")
        ),
        source="signoff",
        link_id=0,
        proposed_by="refunds-desk@example.com",
        scenario=scenario,
        notes="",
        state="open",
        proposed_at=clock.now(),
        rationale="",
    )
    session.add(proposal)
    session.flush()
    return proposal


def build_world(clock: FixedClock) -> dict[str, Any]:
    """Staff of every role, approved checklists, two packages of MANAGER, one dead letter, one
    open finding and one open scenario proposal; returns a value for every argument a staff URL
    rule can take."""
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)
    create_package(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    create_package(clock, DRAFT, {"payments-api": "7.4.1"}, submit=False)
    with unit_of_work(db.session()) as session:
        dead = dead_letter(session, clock)
        finding = Finding(
            application_id=session.scalar(
                sa.select(Application.id).where(Application.slug == "payments-api")
            ),
            what_happened="Refunds stayed queued",
            impact="Customers waited",
            could_have_caught="A large refund scenario",
            state="open",
            reported_at=clock.now(),
            rationale="",
        )
        session.add(finding)
        hook = WebhookSubscription(
            url="https://hooks.example/gatekeeper",
            events=["gate.changed"],
            secret_sealed="sealed",
            created_by="admin@example.com",
            created_at=clock.now(),
        )
        session.add(hook)
        # Someone away next month, whom no checklist names: a row for the absence routes.
        absence = Absence(
            person="away-next-month@example.com",
            starts_at=clock.now() + timedelta(days=30),
            ends_at=clock.now() + timedelta(days=40),
            note="",
            recorded_by="admin@example.com",
            recorded_at=clock.now(),
        )
        session.add(absence)
        session.flush()
        proposal = add_proposal(session, clock)
        message_id, finding_id, subscription_id = dead.id, finding.id, hook.id
        absence_id = absence.id
        proposal_id = proposal.id
        review = learning_reviews.open_by_hand(
            session, KEY, "payments-api", reason="Refunds stalled", actor=MANAGER, now=clock.now()
        )
        item = learning_reviews.add_action_item(
            session,
            review,
            title="Alert on queued refunds",
            owner="payments-team@example.com",
            due_at=clock.now(),
            kind="tooling",
            actor=MANAGER,
            now=clock.now(),
        )
        review_id, item_id = review.id, item.id
    return {
        "review_id": review_id,
        "item_id": item_id,
        "key": KEY,
        "application": "payments-api",
        "version": 7,
        "message_id": message_id,
        "finding_id": finding_id,
        "proposal_id": proposal_id,
        "subscription_id": subscription_id,
        "absence_id": absence_id,
        "token": "not-a-token",
    }


def blueprint_of(rule: Rule) -> str | None:
    return rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None


def staff_rules(app: Flask) -> list[Rule]:
    """Every rule that needs a staff session (everything not public by the access data)."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if not access.is_public(rule.endpoint, blueprint_of(rule))
    ]


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


# Called by machines that authenticate otherwise than by the session cookie: the bearer-token
# JSON API and the CI platforms' integrations (signatures, shared secrets).
MACHINE_BLUEPRINTS = frozenset({"api", "github", "gitlab", "azure_devops"})


def browser_post_rules(app: Flask) -> list[Rule]:
    """Every rule a browser can POST to: everything but what machines call."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if "POST" in methods(rule) and blueprint_of(rule) not in MACHINE_BLUEPRINTS
    ]


def url(app: Flask, rule: Rule, values: dict[str, Any]) -> str:
    """The rule's URL with real values where the test has them, else a placeholder (1)."""
    with app.test_request_context():
        return url_for(rule.endpoint, **{a: values.get(a, 1) for a in rule.arguments})


def known(rule: Rule, values: dict[str, Any]) -> bool:
    """Whether every argument of the rule names a real object of the test data."""
    return all(a in values for a in rule.arguments)


def snapshot() -> dict[str, object]:
    """What a refused request must not change."""
    db.session.remove()
    rows: dict[str, object] = {
        "packages": db.session.execute(
            sa.select(Package.key, Package.state, Package.revision).order_by(Package.key)
        ).all(),
        "signoffs": db.session.scalar(sa.select(sa.func.count()).select_from(Signoff)),
        "outbox": db.session.execute(
            sa.select(OutboxMessage.id, OutboxMessage.state).order_by(OutboxMessage.id)
        ).all(),
        "links": db.session.execute(
            sa.select(SignoffLink.id, SignoffLink.state).order_by(SignoffLink.id)
        ).all(),
        "sign_ins": db.session.execute(
            sa.select(SignInLink.id, SignInLink.state).order_by(SignInLink.id)
        ).all(),
        "users": db.session.execute(
            sa.select(User.email, User.active, User.session_version).order_by(User.email)
        ).all(),
        "absences": db.session.execute(
            sa.select(Absence.id, Absence.person, Absence.ends_at).order_by(Absence.id)
        ).all(),
        "webhooks": db.session.execute(
            sa.select(WebhookSubscription.id, WebhookSubscription.secret_sealed).order_by(
                WebhookSubscription.id
            )
        ).all(),
        "proposals": db.session.execute(
            sa.select(ScenarioProposal.id, ScenarioProposal.state).order_by(ScenarioProposal.id)
        ).all(),
    }
    db.session.remove()
    return rows


def call(
    browser: FlaskClient, method: str, path: str, data: dict[str, Any] | None = None
) -> TestResponse:
    """One request as a browser would send it: unsafe methods carry a valid CSRF token."""
    if method in UNSAFE:
        body = {**(data or {}), "csrf_token": fresh_csrf(browser)}
        return browser.open(path, method=method, data=body)
    return browser.open(path, method=method)
