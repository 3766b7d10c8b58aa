"""Knowing an address (and a package key) is not enough to flood that inbox or keep killing the
person's link: "send me a fresh link" and staff sign-in are limited per recipient, in the
database, whatever the number of clients; and the answer never says whether the address exists.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, SignInLink, SignoffLink
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from gatekeeper.services.sign_ins import SIGN_IN_LIMIT
from gatekeeper.services.signoffs import RESEND_LIMIT
from tests.functional.web_helpers import MANAGER, add_user, client, csrf, sign_in
from tests.support.flows import KEY, prepare
from tests.support.link_forms import sign_link

pytestmark = pytest.mark.security

KEY_USER = "settlement-lead@example.com"
CLIENTS = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"]


def from_address(app: Flask, address: str) -> FlaskClient:
    browser = client(app)
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def resend(browser: FlaskClient, email: str, package: str = KEY) -> str:
    page = browser.get("/s/resend")
    response = browser.post(
        "/s/resend", data={"csrf_token": csrf(page.text), "email": email, "package": package}
    )
    assert response.status_code == 200
    return response.text


def ask_sign_in(browser: FlaskClient, email: str) -> str:
    page = browser.get("/login")
    response = browser.post("/login", data={"csrf_token": csrf(page.text), "email": email})
    assert response.status_code == 200
    return response.text.replace(email, "<address>")


def emails_to(address: str, template: str) -> int:
    db.session.rollback()
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.to_address == address, OutboxMessage.template == template)
        )
        or 0
    )


def links_of(signer: str) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(
            sa.select(SignoffLink.state)
            .where(SignoffLink.signer == signer)
            .order_by(SignoffLink.id)
        )
    )


def test_resends_from_many_clients_neither_flood_nor_kill_a_young_link(
    app: Flask, clock: FixedClock
) -> None:
    token = prepare(app, clock)[KEY_USER]
    browsers = [from_address(app, address) for address in CLIENTS]
    for _ in range(4):
        for browser in browsers:
            resend(browser, KEY_USER)
    assert emails_to(KEY_USER, "signoff_request") == 1, "only the email sent at submit"
    assert links_of(KEY_USER) == ["active"], "the link just sent still works"
    assert sign_link(client(app), f"/s/{token}").status_code == 200


def test_a_resend_replaces_a_link_only_once_it_is_a_few_minutes_old(
    app: Flask, clock: FixedClock
) -> None:
    prepare(app, clock)
    browser = client(app)
    clock.advance(RESEND_LIMIT.keep_newer_than - timedelta(seconds=1))
    resend(browser, KEY_USER)
    assert links_of(KEY_USER) == ["active"]
    clock.advance(timedelta(seconds=1))
    resend(browser, KEY_USER)
    assert links_of(KEY_USER) == ["superseded", "active"], "a lost email can be replaced"


def test_resends_to_one_address_are_capped_per_hour(app: Flask, clock: FixedClock) -> None:
    prepare(app, clock)
    browsers = [from_address(app, address) for address in CLIENTS]
    for minute in range(0, 55, 5):
        clock.advance(timedelta(minutes=5))
        resend(browsers[minute % 4], KEY_USER)
    sent = emails_to(KEY_USER, "signoff_request")
    assert sent == RESEND_LIMIT.per_hour, "the submit email counts towards the hour"
    clock.advance(timedelta(hours=1))
    resend(browsers[0], KEY_USER)
    assert emails_to(KEY_USER, "signoff_request") == sent + 1, "a new hour, a new allowance"


def test_the_resend_answer_is_the_same_sent_limited_or_unknown(
    app: Flask, clock: FixedClock
) -> None:
    prepare(app, clock)
    browser = client(app)
    clock.advance(timedelta(hours=1))
    sent = resend(browser, KEY_USER)
    limited = resend(browser, KEY_USER)
    unknown = resend(browser, "nobody@example.com")
    no_package = resend(browser, KEY_USER, package="2026.11-nope")
    assert links_of(KEY_USER) == ["superseded", "active"]
    assert sent == limited == unknown == no_package


@pytest.fixture
def manager(app: Flask, clock: FixedClock) -> None:
    add_user(clock, MANAGER, users.RELEASE_MANAGER)


def sign_in_links() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(SignInLink.state).order_by(SignInLink.id)))


def test_sign_in_emails_to_one_address_are_limited_whatever_the_clients(
    app: Flask, clock: FixedClock, manager: None
) -> None:
    browsers = [from_address(app, address) for address in CLIENTS]
    for _ in range(3):
        for browser in browsers:
            ask_sign_in(browser, MANAGER)
    assert emails_to(MANAGER, "sign_in") == 1
    assert sign_in_links() == ["active"], "the link just sent still works"
    clock.advance(SIGN_IN_LIMIT.keep_newer_than)
    ask_sign_in(browsers[0], MANAGER)
    assert sign_in_links() == ["superseded", "active"], "a lost email can be replaced"
    for attempt in range(20):
        clock.advance(SIGN_IN_LIMIT.keep_newer_than)
        ask_sign_in(from_address(app, f"203.0.113.{attempt}"), MANAGER)
    assert emails_to(MANAGER, "sign_in") <= SIGN_IN_LIMIT.per_hour * 2, "two hours passed"
    in_the_last_hour = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(SignInLink)
        .where(SignInLink.created_at > clock.now() - timedelta(hours=1))
    )
    assert in_the_last_hour == SIGN_IN_LIMIT.per_hour


def test_a_used_sign_in_link_does_not_hold_back_the_next_one(
    app: Flask, clock: FixedClock, manager: None
) -> None:
    sign_in(app, MANAGER)
    assert sign_in(app, MANAGER).get("/").status_code == 200, "signing in twice in a row works"


def test_the_sign_in_answer_is_the_same_sent_limited_or_unknown(
    app: Flask, clock: FixedClock, manager: None
) -> None:
    browser = client(app)
    sent = ask_sign_in(browser, MANAGER)
    limited = ask_sign_in(browser, MANAGER)
    unknown = ask_sign_in(browser, "nobody@example.com")
    assert emails_to(MANAGER, "sign_in") == 1
    assert sent == limited == unknown
