"""Who may do what in the staff UI, walked exhaustively from the URL map: deny by default, the
role × route matrix, CSRF on every browser POST, and 404 (never 403 or data) for another release
manager's package."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import ROLES
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import tokens
from gatekeeper.web import access
from tests.functional.api_helpers import Api, create_token
from tests.functional.web_helpers import (
    ACCOUNTS,
    ADMIN,
    MANAGER,
    OTHER_MANAGER,
    REVIEWER,
    client,
    path_of,
    sign_in,
    sign_in_url,
)
from tests.support.access import (
    DRAFT,
    KEY,
    UNSAFE,
    browser_post_rules,
    call,
    known,
    methods,
    snapshot,
    staff_rules,
    url,
)
from tests.support.api_tokens import legacy_token
from tests.support.api_walk import write_operations

pytestmark = pytest.mark.security


# --- the access data: complete, and deny by default -------------------------------------------


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
                "confirmations.",
                "emergencies.",
                "badges.",
                "health.",
                "api.",
                "mailbox.",
                # /metrics has its own bearer token or address allowlist (test_metrics)
                "metrics.",
                # CI platforms: each verifies its caller's signature or shared secret.
                "github.",
                "gitlab.",
                "azure_devops.",
                # The calendar feed: its secret key is the credential (test_calendar_feed).
                "calendar_feed.",
            )
        )
        or e == "static"
        for e in public
    )


def test_roles_are_the_ones_accounts_can_have() -> None:
    assert set(access.ROLES) == set(ROLES)
    assert set(access.ROLES) > access.SEES_ALL_PACKAGES


def test_an_endpoint_missing_from_the_rules_is_refused_to_everyone(
    app: Flask, world: dict[str, Any]
) -> None:
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    for role, email in ACCOUNTS.items():
        response = sign_in(app, email).get("/forgotten")
        assert response.status_code == 403, role
        assert "secret" not in response.text


# --- the role × route matrix ------------------------------------------------------------------


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


# --- CSRF -------------------------------------------------------------------------------------


def test_a_browser_post_without_csrf_token_is_refused_everywhere(
    app: Flask, world: dict[str, Any]
) -> None:
    browser = sign_in(app, ADMIN)
    values = {**world, "token": path_of(sign_in_url(app, ADMIN)).rsplit("/", 1)[1]}
    before = snapshot()
    posted = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            continue  # bearer tokens only, never the session cookie: no CSRF to forge
        if rule.rule.startswith("/integrations/"):
            continue  # signatures or shared secrets only, never the cookie: the same
        for method in set(methods(rule)) & UNSAFE:
            path = url(app, rule, values)
            response = browser.open(path, method=method, data={"email": ADMIN})
            assert response.status_code == 400, (method, path, response.status_code)
            assert "CSRF" in response.text
            posted.append(rule.endpoint)
    assert {r.endpoint for r in browser_post_rules(app)} <= set(posted)
    assert {"auth.login", "auth.sign_in", "auth.logout", "signoffs.decide"} <= set(posted)
    assert snapshot() == before
    assert browser.get("/").status_code == 200, "the refused logout did not sign out"


# --- another release manager's package (IDOR) -------------------------------------------------


def without_csrf_token(page: str) -> str:
    """CSRF tokens carry a timestamp: two pages rendered a second apart differ only there."""
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*', r"\1", page)


def test_another_release_managers_package_is_not_found(app: Flask, world: dict[str, Any]) -> None:
    other = sign_in(app, OTHER_MANAGER)
    other.get("/")  # shows (and so clears) the "signed in" message
    before = snapshot()
    unknown = other.get("/packages/no-such-package")
    assert unknown.status_code == 404
    # Every staff route about one package, every method, for the other manager's draft and
    # package in review: the same "not found" as for a package that does not exist.
    by_key = [rule for rule in staff_rules(app) if "key" in rule.arguments]
    assert {"packages.show", "packages.edit", "packages.release"} <= {r.endpoint for r in by_key}
    form = {
        "digest": "sha256:x",
        "title": "Mine now",
        "environment": "x",
        "app-payments-api": "on",
        "app-payments-api-version": "9",
    }
    tried = 0
    for rule in by_key:
        for key in (KEY, DRAFT):
            path = url(app, rule, {**world, "key": key})
            for method in methods(rule):
                response = call(other, method, path, form)
                assert response.status_code == 404, (method, path, response.status_code)
                assert "payments-api" not in response.text, (method, path)
                if method == "GET":
                    assert without_csrf_token(response.text.replace(key, "K")) == (
                        without_csrf_token(unknown.text.replace("no-such-package", "K"))
                    ), path
                tried += 1
    assert tried >= 2 * len(by_key)
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


# --- the same packages through the JSON API -----------------------------------------------------

# Every API operation that changes one existing package under the packages:write scope.
PACKAGE_WRITES = [
    operation
    for operation in write_operations()
    if "{key}" in operation.path
    and operation.spec["x-required-scope"] == tokens.SCOPE_PACKAGES_WRITE
]


# A body each operation accepts, so what answers is the package being out of reach.
BODIES = {"declareEmergency": {"reason": "Mine now"}}


def api_package_writes(api: Api) -> list[tuple[str, str, int]]:
    """Every packages:write operation on both of MANAGER's packages: (operation, key, status)."""
    answers = []
    for operation in PACKAGE_WRITES:
        for key in (KEY, DRAFT):
            body = (
                BODIES.get(operation.operation_id, {"title": "Mine now"})
                if operation.body_schema is not None
                else None
            )
            response = api.call(operation.method.upper(), operation.url(key=key), json=body)
            answers.append((operation.operation_id, key, response.status_code))
    return answers


def test_the_api_package_writes_are_walked() -> None:
    assert {o.operation_id for o in PACKAGE_WRITES} >= {
        "editPackage",
        "submitPackage",
        "cancelPackage",
        "declareEmergency",
    }


def test_another_release_managers_token_cannot_change_their_package(
    app: Flask, world: dict[str, Any], clock: FixedClock
) -> None:
    api = Api(
        app, create_token(clock, "other", (tokens.SCOPE_PACKAGES_WRITE,), owner=OTHER_MANAGER)
    )
    before = snapshot()
    answers = api_package_writes(api)
    assert snapshot() == before, answers
    assert {status for _, _, status in answers} == {404}, answers


def test_a_token_without_an_owner_cannot_change_packages(
    app: Flask, world: dict[str, Any], clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:  # as issued before `tokens create` refused it
        secret = legacy_token(
            session,
            name="ownerless",
            scopes=(tokens.SCOPE_PACKAGES_WRITE,),
            owner=None,
            clock=clock,
        )
    api = Api(app, secret)
    before = snapshot()
    answers = api_package_writes(api)
    assert snapshot() == before, answers
    assert {status for _, _, status in answers} == {403}, answers


def test_an_admins_token_and_the_assemblers_own_token_may_change_the_package(
    app: Flask, world: dict[str, Any], clock: FixedClock
) -> None:
    """The other side of the scoping above: the rule is "like the web UI", not "nobody"."""
    own = Api(app, create_token(clock, "own", (tokens.SCOPE_PACKAGES_WRITE,), owner=MANAGER))
    edited = own.call("PATCH", f"/api/v1/packages/{KEY}", json={"title": "Renamed by owner"})
    assert edited.status_code == 200, edited.text
    admin = Api(app, create_token(clock, "admin", (tokens.SCOPE_PACKAGES_WRITE,), owner=ADMIN))
    edited = admin.call("PATCH", f"/api/v1/packages/{KEY}", json={"title": "Renamed by admin"})
    assert edited.status_code == 200, edited.text
    assert edited.json["title"] == "Renamed by admin"
