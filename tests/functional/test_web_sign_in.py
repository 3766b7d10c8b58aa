"""Staff sign-in by emailed link, end to end: real SMTP on loopback, links followed in a client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import SignInLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.services import users
from gatekeeper.services.sign_ins import SIGN_IN_LIMIT
from gatekeeper.web.serving import redact
from tests.functional.web_helpers import (
    MANAGER,
    add_user,
    client,
    csrf,
    fresh_csrf,
    path_of,
    post,
    sign_in,
)
from tests.support.mail import messages_to, run_worker

LOGIN_LINK = re.compile(r"https?://[^\s<>\"']+/login/[A-Za-z0-9_\-.]+")


@pytest.fixture
def manager(app: Flask, clock: FixedClock) -> None:
    add_user(clock, MANAGER, users.RELEASE_MANAGER, name="Riley Morgan")


def ask_for_link(browser: FlaskClient, email: str, next_path: str | None = None) -> str:
    path = "/login" + (f"?next={next_path}" if next_path else "")
    page = browser.get(path)
    assert page.status_code == 200
    response = browser.post(path, data={"csrf_token": csrf(page.text), "email": email})
    assert response.status_code == 200
    return response.text


def emailed_link(app: Flask, smtp: MailCatcher, email: str) -> str:
    run_worker(app)
    mails = [m for m in messages_to(smtp, email) if "sign-in link" in m.subject]
    assert mails, f"no sign-in email to {email}"
    found = LOGIN_LINK.search(mails[0].text)  # newest first
    assert found, mails[0].text
    assert found.group(0).startswith("http://127.0.0.1:5000/login/"), "built from the base URL"
    return path_of(found.group(0))


def test_sign_in_through_the_emailed_link(
    app: Flask, manager: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    browser = client(app)
    first = browser.get("/")
    assert first.status_code == 302
    assert first.headers["Location"].startswith("/login")
    answer = ask_for_link(browser, "Release-Manager@Example.com")
    assert "Check your email" in answer
    path = emailed_link(app, smtp, MANAGER)
    # Opening the link (twice, as a mail scanner would) signs nobody in and uses nothing.
    for _ in range(2):
        page = browser.get(path)
        assert page.status_code == 200
        assert "Sign in as Riley Morgan" in page.text
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "same-origin"
        assert "noindex" in page.headers["X-Robots-Tag"]
    assert browser.get("/").status_code == 302
    link = db.session.scalars(sa.select(SignInLink)).one()
    assert (link.state, link.used_at) == ("active", None)
    response = browser.post(path, data={"csrf_token": csrf(page.text)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    dashboard = browser.get("/")
    assert dashboard.status_code == 200
    assert "Riley Morgan" in dashboard.text
    assert "Signed in as Riley Morgan." in dashboard.text


def test_a_link_works_once(app: Flask, manager: None, smtp: MailCatcher) -> None:
    ask_for_link(client(app), MANAGER)
    path = emailed_link(app, smtp, MANAGER)
    sign_in_client = client(app)
    page = sign_in_client.get(path)
    assert sign_in_client.post(path, data={"csrf_token": csrf(page.text)}).status_code == 302
    other = client(app)
    again = other.get(path)
    assert again.status_code == 410
    assert "used already" in again.text
    token = fresh_csrf(other)
    assert other.post(path, data={"csrf_token": token}).status_code == 410
    assert other.get("/").status_code == 302, "still signed out"


def test_an_expired_link_does_not_sign_in(
    app: Flask, manager: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    browser = client(app)
    ask_for_link(browser, MANAGER)
    path = emailed_link(app, smtp, MANAGER)
    page = browser.get(path)
    clock.advance(timedelta(minutes=15, seconds=1))
    response = browser.post(path, data={"csrf_token": csrf(page.text)})
    assert response.status_code == 410
    assert "expired" in response.text
    assert browser.get(path).status_code == 410
    assert browser.get("/").status_code == 302


def test_unknown_and_deactivated_addresses_get_the_same_answer(
    app: Flask, manager: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    add_user(clock, "gone@example.com", users.RELEASE_MANAGER)
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, "gone@example.com", clock=clock)
    answers = {
        email: ask_for_link(client(app), email).replace(email, "EMAIL")
        for email in (MANAGER, "nobody@example.com", "gone@example.com")
    }
    assert len(set(answers.values())) == 1, answers
    run_worker(app)
    assert messages_to(smtp, "nobody@example.com") == []
    assert messages_to(smtp, "gone@example.com") == []
    assert len(messages_to(smtp, MANAGER)) == 1


def test_only_the_newest_link_works(
    app: Flask, manager: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    browser = client(app)
    ask_for_link(browser, MANAGER)
    first = emailed_link(app, smtp, MANAGER)
    # Asked again once the first link is a few minutes old (a younger one is kept instead).
    clock.advance(SIGN_IN_LIMIT.keep_newer_than)
    ask_for_link(browser, MANAGER)
    second = emailed_link(app, smtp, MANAGER)
    assert first != second
    page = browser.get(first)
    assert page.status_code == 410
    assert "newer sign-in link" in page.text
    assert browser.get(second).status_code == 200


def test_a_tampered_link_is_a_404(app: Flask, manager: None) -> None:
    page = client(app).get("/login/not-a-token")
    assert page.status_code == 404
    assert "not valid" in page.text


def test_sign_in_returns_to_the_page_asked_for_and_never_off_site(
    app: Flask, manager: None, smtp: MailCatcher
) -> None:
    browser = client(app)
    redirect = browser.get("/checklists")
    assert redirect.headers["Location"] == "/login?next=/checklists"
    ask_for_link(browser, MANAGER, next_path="/checklists")
    path = emailed_link(app, smtp, MANAGER)
    page = browser.get(path)
    response = browser.post(path, data={"csrf_token": csrf(page.text)})
    assert response.headers["Location"] == "/checklists"
    for evil in ("//evil.example.com/x", "https://evil.example.com/", "/\\evil.example.com"):
        other = client(app)
        ask_for_link(other, MANAGER, next_path=evil)
        path = emailed_link(app, smtp, MANAGER)
        page = other.get(path)
        response = other.post(path, data={"csrf_token": csrf(page.text)})
        assert response.headers["Location"] == "/", evil


def test_sign_out(app: Flask, manager: None) -> None:
    browser = sign_in(app, MANAGER)
    assert browser.get("/").status_code == 200
    response = post(browser, "/logout")
    assert response.status_code == 302
    assert browser.get("/").status_code == 302
    assert "You are signed out." in browser.get("/login").text


def test_deactivation_ends_the_session_at_once(
    app: Flask, manager: None, runner: FlaskCliRunner
) -> None:
    browser = sign_in(app, MANAGER)
    assert browser.get("/").status_code == 200
    result = runner.invoke(cli, ["users", "deactivate", MANAGER])
    assert result.exit_code == 0, result.output
    db.session.remove()
    response = browser.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    # Reactivating does not bring the old session back: the session version moved on.
    assert runner.invoke(cli, ["users", "activate", MANAGER]).exit_code == 0
    db.session.remove()
    assert browser.get("/").status_code == 302
    assert sign_in(app, MANAGER).get("/").status_code == 200


def test_a_forged_session_cookie_without_the_session_version_is_nobody(
    app: Flask, manager: None
) -> None:
    browser = client(app)
    for forged in ("1", "1:2", "x:y", "1:1:1"):
        with browser.session_transaction() as session:
            session["_user_id"] = forged
        assert browser.get("/").status_code == 302, forged


def test_asking_for_links_is_rate_limited(app: Flask, manager: None) -> None:
    browser = client(app)
    token = csrf(browser.get("/login").text)
    codes = [
        browser.post("/login", data={"csrf_token": token, "email": "x@example.com"}).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [200] * 5
    assert codes[5:] == [429, 429]


def test_a_malformed_address_is_a_form_error(app: Flask) -> None:
    browser = client(app)
    token = csrf(browser.get("/login").text)
    response = browser.post("/login", data={"csrf_token": token, "email": "not an address"})
    assert response.status_code == 422
    assert 'class="error-summary" role="alert"' in response.text
    assert 'href="#login-email"' in response.text
    assert 'class="error-text" id="login-email-error"' in response.text


def test_the_request_log_never_contains_a_sign_in_token() -> None:
    line = '"GET /login/eyJsIjoxLCJuIjoiYWJjIn0.Zx9.abc-def HTTP/1.1" 200 -'
    assert redact(line) == '"GET /login/[token] HTTP/1.1" 200 -'
    assert redact('"POST /login HTTP/1.1" 200 -') == '"POST /login HTTP/1.1" 200 -'
