"""Who may open what: the role × route rules walked exhaustively from the URL map, CSRF on every
browser POST, 404 (never 403 or data) outside a user's reach, headers and accessible markup."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    Application,
    Finding,
    OutboxMessage,
    Package,
    SignInLink,
    Signoff,
    SignoffLink,
    User,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from gatekeeper.web import access
from gatekeeper.web.errors import error_envelope
from tests.conftest import SAMPLES
from tests.functional.api_helpers import create_package, sync_and_approve
from tests.functional.web_helpers import (
    ACCOUNTS,
    ADMIN,
    MANAGER,
    OTHER_MANAGER,
    REVIEWER,
    add_staff,
    client,
    fresh_csrf,
    path_of,
    sign_in,
    sign_in_url,
)

KEY = "2026.11-own"
DRAFT = "2026.11-draft"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def world(app: Flask, clock: FixedClock) -> dict[str, Any]:
    """Staff of every role, approved checklists, two packages of MANAGER, one dead letter."""
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)
    create_package(clock, KEY, {"payments-api": "7.4.0", "storefront-web": "2026.11.2"})
    create_package(clock, DRAFT, {"payments-api": "7.4.1"}, submit=False)
    with unit_of_work(db.session) as session:
        dead = OutboxMessage(
            template="signoff_request",
            to_address="bounced@example.com",
            subject="Sign-off needed",
            body_text="x",
            body_html="x",
            state="dead",
            attempts=1,
            next_attempt_at=clock.now(),
            last_error="SMTP 550: no such user",
            created_at=clock.now(),
        )
        session.add(dead)
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
        session.flush()
        message_id, finding_id = dead.id, finding.id
    return {
        "key": KEY,
        "application": "payments-api",
        "version": 7,
        "message_id": message_id,
        "finding_id": finding_id,
        "token": "not-a-token",
    }


def staff_rules(app: Flask) -> list[Rule]:
    """Every rule that needs a staff session (everything not public by the access data)."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if not access.is_public(rule.endpoint, _blueprint(rule))
    ]


def _blueprint(rule: Rule) -> str | None:
    return rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


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
    rows = {
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
    }
    db.session.remove()
    return rows


def call(browser: FlaskClient, method: str, path: str) -> TestResponse:
    if method in UNSAFE:
        return browser.open(path, method=method, data={"csrf_token": fresh_csrf(browser)})
    return browser.open(path, method=method)


def test_every_route_is_public_or_has_roles(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in staff_rules(app)}
    assert endpoints == set(access.ROUTE_ROLES), (
        "every non-public endpoint needs an entry in access.ROUTE_ROLES (and only real ones)"
    )
    for roles in access.ROUTE_ROLES.values():
        assert roles <= set(access.ROLES)
    public = {r.endpoint for r in app.url_map.iter_rules()} - endpoints
    assert {"auth.login", "auth.confirm", "signoffs.show", "health.healthz", "static"} <= public
    assert all(
        e.startswith(
            (
                "auth.",
                "signoffs.",
                "reviews.",
                "reports.",
                "badges.",
                "health.",
                "api.",
                "mailbox.",
            )
        )
        or e == "static"
        for e in public
    )


def test_an_endpoint_missing_from_the_rules_is_refused_to_everyone(
    app: Flask, world: dict[str, Any]
) -> None:
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    for role, email in ACCOUNTS.items():
        response = sign_in(app, email).get("/forgotten")
        assert response.status_code == 403, role
        assert "secret" not in response.text


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, world: dict[str, Any]) -> None:
    before = snapshot()
    browser = client(app)
    for rule in staff_rules(app):
        path = url(app, rule, world)
        for method in methods(rule):
            response = call(browser, method, path)
            assert response.status_code == 302, (method, path, response.status_code)
            assert response.headers["Location"].startswith("/login"), (method, path)
    assert snapshot() == before


def test_role_by_route_matrix(app: Flask, world: dict[str, Any]) -> None:
    browsers = {role: sign_in(app, email) for role, email in ACCOUNTS.items()}
    rules = staff_rules(app)
    # Refused requests first, all of them: they must change nothing at all.
    before = snapshot()
    refused = 0
    for rule in rules:
        allowed = access.ROUTE_ROLES[rule.endpoint]
        for role, browser in browsers.items():
            if role in allowed:
                continue
            for method in methods(rule):
                response = call(browser, method, url(app, rule, world))
                assert response.status_code == 403, (role, method, rule.rule)
                assert 'data-testid="error-page"' in response.text
                refused += 1
    assert refused > 0
    assert snapshot() == before
    # Then every allowed request, reads before actions: reads answer 200, and actions are never
    # refused for the role (they may still be a conflict or an invalid form).
    allowed_calls = sorted(
        (method != "GET", rule.rule, method, role, rule)
        for rule in rules
        for role in access.ROUTE_ROLES[rule.endpoint]
        for method in methods(rule)
    )
    for _, _, method, role, rule in allowed_calls:
        response = call(browsers[role], method, url(app, rule, world))
        if method == "GET" and known(rule, world):
            assert response.status_code == 200, (role, rule.rule, response.text[:500])
        else:
            assert response.status_code not in (401, 403), (role, method, rule.rule)
            location = response.headers.get("Location", "")
            assert not location.startswith("/login"), (role, method, rule.rule)


def test_a_browser_post_without_csrf_token_is_refused_everywhere(
    app: Flask, world: dict[str, Any]
) -> None:
    values = {**world, "token": path_of(sign_in_url(app, ADMIN)).rsplit("/", 1)[1]}
    browser = sign_in(app, ADMIN)
    before = snapshot()
    posted = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            continue  # bearer tokens only, never the session cookie: no CSRF to forge
        for method in set(methods(rule)) & UNSAFE:
            path = url(app, rule, values)
            response = browser.open(path, method=method, data={"email": ADMIN})
            assert response.status_code == 400, (method, path, response.status_code)
            assert "CSRF" in response.text
            posted.append(rule.endpoint)
    staff_actions = {r.endpoint for r in staff_rules(app) if "POST" in methods(r)}
    assert staff_actions <= set(posted)
    assert {"auth.login", "auth.sign_in", "auth.logout", "signoffs.decide"} <= set(posted)
    assert snapshot() == before
    assert browser.get("/").status_code == 200, "the refused logout did not sign out"


def test_another_release_managers_package_is_not_found(app: Flask, world: dict[str, Any]) -> None:
    other = sign_in(app, OTHER_MANAGER)
    other.get("/")  # shows (and so clears) the "signed in" message
    before = snapshot()
    unknown = other.get("/packages/no-such-package")
    assert unknown.status_code == 404
    for path in (f"/packages/{KEY}", f"/packages/{KEY}/edit", f"/packages/{DRAFT}"):
        response = other.get(path)
        assert response.status_code == 404, path
        assert response.text.replace(KEY, "K").replace(DRAFT, "K") == unknown.text.replace(
            "no-such-package", "K"
        )
        assert "payments-api" not in response.text
    for action in ("submit", "remind", "cancel", "release", "edit"):
        for key in (KEY, DRAFT):
            response = other.post(
                f"/packages/{key}/{action}",
                data={
                    "csrf_token": fresh_csrf(other),
                    "digest": "sha256:x",
                    "title": "Mine now",
                    "environment": "x",
                    "app-payments-api": "on",
                    "app-payments-api-version": "9",
                },
            )
            assert response.status_code == 404, (action, key, response.status_code)
    assert snapshot() == before
    dashboard = other.get("/")
    assert KEY not in dashboard.text
    assert DRAFT not in dashboard.text
    # Their own is fine; admins and governance reviewers see everyone's.
    assert KEY in sign_in(app, MANAGER).get("/").text
    for email in (ADMIN, REVIEWER):
        browser = sign_in(app, email)
        assert KEY in browser.get("/").text
        assert browser.get(f"/packages/{KEY}").status_code == 200


def test_security_headers_on_staff_pages(app: Flask, world: dict[str, Any]) -> None:
    browser = sign_in(app, ADMIN)
    for path in ("/", f"/packages/{KEY}", "/packages/new", "/checklists", "/outbox/", "/login"):
        response = browser.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp
        assert "style-src 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    cookie = browser.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


class _Page(HTMLParser):
    """Collects what the accessibility checks need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.labelled: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if found.get("id"):
            self.ids.append(found["id"] or "")
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        if tag in ("input", "select", "textarea") and found.get("type") not in (
            "hidden",
            "submit",
        ):
            self.controls.append(found)
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline.append(tag)
        if tag == "script" and not found.get("src"):
            self.inline.append("script")


def test_pages_have_landmarks_labels_and_no_inline_code(app: Flask, world: dict[str, Any]) -> None:
    staff = sign_in(app, ADMIN)
    anonymous = client(app)
    pages = [
        (staff, url(app, r, world))
        for r in staff_rules(app)
        if "GET" in methods(r) and known(r, world)
    ]
    pages += [(staff, f"/packages/{DRAFT}"), (anonymous, "/login"), (anonymous, "/s/resend")]
    for browser, path in pages:
        response = browser.get(path)
        assert response.status_code == 200, path
        if response.mimetype != "text/html" or response.headers.get("Content-Disposition"):
            continue  # downloads (CSV, the standalone evidence pack) are not app pages
        page = _Page()
        page.feed(response.text)
        assert page.tags.count("main") == 1, path
        assert page.tags.count("h1") == 1, path
        assert len(page.ids) == len(set(page.ids)), f"duplicate ids on {path}"
        assert page.inline == [], f"inline style or script on {path}"
        for control in page.controls:
            assert control.get("id") in page.labelled or control.get("aria-label"), (
                path,
                control,
            )
    error = staff.get("/packages/nope")
    assert error.status_code == 404
    assert "<main" in error.text


def test_api_errors_keep_their_envelope(app: Flask) -> None:
    response = client(app).get("/api/v1/packages/x")
    assert response.status_code == 401
    assert set(response.json or {}) == set(error_envelope("x", "y"))


def test_roles_are_the_ones_accounts_can_have() -> None:
    assert set(access.ROLES) == set(users.ROLES)
    assert set(access.ROLES) > access.SEES_ALL_PACKAGES
