"""Staff sessions end on the server: a cookie copied before sign-out is nobody afterwards."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.functional.web_helpers import MANAGER, add_user, client, post, sign_in

pytestmark = pytest.mark.security

COOKIE = "session"


@pytest.fixture
def manager(app: Flask, clock: FixedClock) -> None:
    add_user(clock, MANAGER, users.RELEASE_MANAGER)


def test_a_cookie_copied_before_sign_out_is_signed_out_after_it(app: Flask, manager: None) -> None:
    browser = sign_in(app, MANAGER)
    copied = browser.get_cookie(COOKIE)
    assert copied is not None
    thief = client(app)
    thief.set_cookie(COOKIE, copied.value)
    assert thief.get("/").status_code == 200, "the copy works while the session lives"
    assert post(browser, "/logout").status_code == 302
    replayed = thief.get("/")
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/login")
    assert thief.get("/packages/new").status_code == 302
    db.session.remove()
    signed_out = db.session.scalars(
        sa.select(AuditEvent.actor).where(AuditEvent.action == "user.signed_out")
    ).all()
    assert signed_out == [MANAGER]


def test_signing_in_again_after_sign_out_works_and_old_cookies_stay_dead(
    app: Flask, manager: None
) -> None:
    first = sign_in(app, MANAGER)
    copied = first.get_cookie(COOKIE)
    assert copied is not None
    post(first, "/logout")
    again = sign_in(app, MANAGER)
    assert again.get("/").status_code == 200
    replay = client(app)
    replay.set_cookie(COOKIE, copied.value)
    assert replay.get("/").status_code == 302


def test_signing_out_without_a_session_changes_nothing(app: Flask, manager: None) -> None:
    browser = client(app)
    assert post(browser, "/logout").status_code == 302
    db.session.remove()
    actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert actions == ["user.added"]
