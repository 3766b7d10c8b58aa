"""Shared setup for the staff web UI tests: accounts, signed-in clients, CSRF tokens, data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import User
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import sign_ins, users
from gatekeeper.web.auth import sign_in_settings

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
ADMIN = "admin@example.com"
MANAGER = "release-manager@example.com"  # the assembler in api_helpers.create_package
OTHER_MANAGER = "other-manager@example.com"
REVIEWER = "reviewer@example.com"
ACCOUNTS = {
    users.ADMIN: ADMIN,
    users.RELEASE_MANAGER: MANAGER,
    users.GOVERNANCE_REVIEWER: REVIEWER,
}


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The `app` fixture keeps an app context open for the whole test, and a request reuses an
    open context of its app: `g` would then carry Flask-Login's cached user and Flask-WTF's
    cached CSRF token from one request (and one client) to the next.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        with self.application.app_context():
            response: TestResponse = super().open(*args, **kwargs)
        db.session.remove()
        return response


def client(app: Flask) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


def add_user(clock: FixedClock, email: str, role: str, name: str | None = None) -> None:
    with unit_of_work(db.session) as session:
        users.add_user(
            session, email=email, name=name or email.split("@")[0].title(), role=role, clock=clock
        )


def account(email: str) -> User | None:
    """The account as committed (a fresh session, detached when returned)."""
    db.session.remove()
    found = db.session.scalar(sa.select(User).where(User.email == email))
    db.session.remove()
    return found


def add_staff(clock: FixedClock) -> None:
    """One account per role, plus a second release manager."""
    for role, email in ACCOUNTS.items():
        add_user(clock, email, role)
    add_user(clock, OTHER_MANAGER, users.RELEASE_MANAGER)


def csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in_url(app: Flask, email: str) -> str:
    """A sign-in link for `email`, as the email would carry it (issued through the service)."""
    with unit_of_work(db.session) as session:
        url = sign_ins.request_sign_in(
            session, email, settings=sign_in_settings(), clock=runtime(app).clock
        )
    assert url is not None, f"{email} has no active account"
    return url


def words(page: str) -> str:
    """What a person reads on a page: its text without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def path_of(url: str) -> str:
    return urlsplit(url).path


def sign_in(app: Flask, email: str, browser: FlaskClient | None = None) -> FlaskClient:
    """A client signed in as `email` through a real sign-in link (GET shows, POST signs in)."""
    browser = browser or client(app)
    path = path_of(sign_in_url(app, email))
    page = browser.get(path)
    assert page.status_code == 200, page.text
    response = browser.post(path, data={"csrf_token": csrf(page.text)})
    assert response.status_code == 302, response.text
    return browser


def fresh_csrf(browser: FlaskClient) -> str:
    """A CSRF token valid for the client's session: from the sign-in form when signed out, else
    from the sign-out form every staff page carries."""
    page = browser.get("/login")
    if page.status_code == 302:
        page = browser.get("/")
    return csrf(page.text)


def post(browser: FlaskClient, path: str, data: dict[str, Any] | None = None) -> TestResponse:
    """POST with a valid CSRF token."""
    body = {"csrf_token": fresh_csrf(browser), **(data or {})}
    return browser.post(path, data=body)
