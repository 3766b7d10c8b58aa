"""Admins manage staff accounts in the browser: add, deactivate (sessions end at once),
activate; every change audited with who made it and from where."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.domain.clock import FixedClock
from tests.functional.web_helpers import ADMIN, MANAGER, account, add_staff, post, sign_in

NEWCOMER = "sam.rivera@example.com"


def events(action: str) -> list[tuple[str, str, str | None]]:
    db.session.remove()
    found = db.session.execute(
        sa.select(AuditEvent.actor, AuditEvent.subject, AuditEvent.client_address)
        .where(AuditEvent.action == action)
        .order_by(AuditEvent.seq)
    ).all()
    db.session.remove()
    return [tuple(e) for e in found]


def add(
    admin: FlaskClient, email: str, name: str = "Sam Rivera", role: str = "release_manager"
) -> TestResponse:
    return post(admin, "/users/", {"email": email, "name": name, "role": role})


def test_an_admin_adds_an_account_who_can_then_sign_in(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    page = admin.get("/users/").text
    assert 'data-testid="nav-users"' in page
    assert f'data-email="{MANAGER}" data-active="yes"' in page
    added = add(admin, " Sam.Rivera@Example.com ", role="governance_reviewer")
    assert added.status_code == 302
    page = admin.get("/users/").text
    assert f"{NEWCOMER} can now sign in" in page
    created = account(NEWCOMER)
    assert created is not None
    assert (created.name, created.role, created.active) == (
        "Sam Rivera",
        "governance_reviewer",
        True,
    )
    assert events("user.added")[-1] == (ADMIN, f"staff account {NEWCOMER}", "127.0.0.1")
    assert sign_in(app, NEWCOMER).get("/governance").status_code == 200


def test_bad_or_duplicate_accounts_are_explained_and_nothing_is_added(
    app: Flask, clock: FixedClock
) -> None:
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    before = events("user.added")
    cases = [
        ({"email": "not-an-address", "name": "X", "role": "admin"}, 422, "is not a valid email"),
        ({"email": MANAGER, "name": "Again", "role": "admin"}, 409, "already exists"),
        ({"email": NEWCOMER, "name": "", "role": "admin"}, 422, "This field is required"),
        ({"email": NEWCOMER, "name": "X", "role": "superuser"}, 422, "Not a valid choice"),
    ]
    for form, status, message in cases:
        response = post(admin, "/users/", form)
        assert response.status_code == status, (form, response.text)
        assert message in response.text, form
        assert "<main" in response.text
    assert events("user.added") == before
    assert account(NEWCOMER) is None


def test_deactivation_ends_the_sessions_at_once_and_activation_lets_them_back(
    app: Flask, clock: FixedClock
) -> None:
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    manager = sign_in(app, MANAGER)
    assert manager.get("/").status_code == 200
    target = account(MANAGER)
    assert target is not None
    assert post(admin, f"/users/{target.id}/deactivate").status_code == 302
    assert "deactivated: their sessions have ended" in admin.get("/users/").text
    assert manager.get("/").status_code == 302, "the open session no longer works"
    assert f'data-email="{MANAGER}" data-active="no"' in admin.get("/users/").text
    assert post(admin, f"/users/{target.id}/activate").status_code == 302
    assert sign_in(app, MANAGER).get("/").status_code == 200
    assert [e[0] for e in events("user.deactivated")] == [ADMIN]
    assert [e[0] for e in events("user.activated")] == [ADMIN]


def test_an_admin_cannot_deactivate_themselves(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    me = account(ADMIN)
    assert me is not None
    page = admin.get("/users/").text
    assert f'data-testid="deactivate-{me.id}"' not in page
    refused = post(admin, f"/users/{me.id}/deactivate")
    assert refused.status_code == 409
    assert "cannot deactivate your own account" in refused.text
    assert admin.get("/users/").status_code == 200
    assert events("user.deactivated") == []


def test_an_unknown_account_is_not_found(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    admin = sign_in(app, ADMIN)
    assert post(admin, "/users/9999/deactivate").status_code == 404
    assert post(admin, "/users/9999/activate").status_code == 404
