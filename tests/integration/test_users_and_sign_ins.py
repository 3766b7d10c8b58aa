"""Staff accounts and sign-in links on a real database: single use, expiry, only the newest."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, SignInLink, User
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import (
    Conflict,
    LinkUnusable,
    NotFound,
    TokenInvalid,
    ValidationFailed,
)
from gatekeeper.services import audit, sign_ins, users
from gatekeeper.services.sign_ins import SIGN_IN_LIMIT
from gatekeeper.signing import TokenService
from tests.conftest import TEST_KEY

SETTINGS = sign_ins.SignInSettings(base_url="https://gate.example.com", secret_keys=(TEST_KEY,))
EMAIL = "rm@example.com"


def add(clock: FixedClock, email: str = EMAIL, role: str = users.RELEASE_MANAGER) -> None:
    with unit_of_work(db.session) as session:
        users.add_user(session, email=email, name="Riley", role=role, clock=clock)


def request_link(clock: FixedClock, email: str = EMAIL) -> str | None:
    with unit_of_work(db.session) as session:
        return sign_ins.request_sign_in(session, email, settings=SETTINGS, clock=clock)


def token_of(url: str | None) -> str:
    assert url is not None
    assert url.startswith("https://gate.example.com/login/")
    return url.rsplit("/", 1)[1]


def consume(clock: FixedClock, token: str) -> sign_ins.SignInView:
    with unit_of_work(db.session) as session:
        return sign_ins.consume_sign_in(session, token, settings=SETTINGS, clock=clock)


def test_accounts_are_validated_and_unique(app: Flask, clock: FixedClock) -> None:
    add(clock, " RM@Example.com ")
    assert [u.email for u in users.list_users(db.session)] == [EMAIL]
    with pytest.raises(Conflict):
        add(clock)
    with pytest.raises(ValidationFailed, match="not a valid email"):
        add(clock, "not-an-address")
    with pytest.raises(ValidationFailed, match="role must be one of"):
        add(clock, "x@example.com", role="superuser")
    with pytest.raises(ValidationFailed, match="a name of"), unit_of_work(db.session) as session:
        users.add_user(session, email="y@example.com", name=" ", role="admin", clock=clock)
    with pytest.raises(NotFound):
        users.get_user(db.session, "nobody@example.com")


def test_deactivation_bumps_the_session_version_once(app: Flask, clock: FixedClock) -> None:
    add(clock)
    user = users.get_user(db.session, EMAIL)
    assert users.session_user(db.session, user.id, 1) is not None
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, EMAIL, clock=clock)
        users.deactivate_user(session, EMAIL, clock=clock)
    db.session.remove()
    user = users.get_user(db.session, EMAIL)
    assert (user.active, user.session_version, user.deactivated_at) == (False, 2, clock.now())
    assert users.session_user(db.session, user.id, 1) is None
    assert users.session_user(db.session, user.id, 2) is None, "inactive"
    with unit_of_work(db.session) as session:
        users.activate_user(session, EMAIL, clock=clock)
    assert users.session_user(db.session, user.id, 2) is not None
    assert users.session_user(db.session, user.id, 1) is None, "old sessions stay dead"


def test_account_changes_are_audited_with_who_made_them(app: Flask, clock: FixedClock) -> None:
    admin = "admin@example.com"
    add(clock, admin, users.ADMIN)
    with unit_of_work(db.session) as session:
        users.add_user(
            session, email=EMAIL, name="Riley", role="release_manager", clock=clock, actor=admin
        )
        users.deactivate_user(session, EMAIL, clock=clock, actor=admin)
        users.deactivate_user(session, EMAIL, clock=clock, actor=admin)  # no change, no event
        users.activate_user(session, EMAIL, clock=clock, actor=admin)
    events = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.actor, AuditEvent.subject).order_by(AuditEvent.seq)
    ).all()
    assert [tuple(e) for e in events] == [
        ("user.added", "cli", f"staff account {admin}"),
        ("user.added", admin, f"staff account {EMAIL}"),
        ("user.deactivated", admin, f"staff account {EMAIL}"),
        ("user.activated", admin, f"staff account {EMAIL}"),
    ]
    assert audit.verify(db.session).ok


def test_nobody_deactivates_themselves_or_the_last_admin(app: Flask, clock: FixedClock) -> None:
    first, second = "admin@example.com", "admin2@example.com"
    add(clock, first, users.ADMIN)
    with pytest.raises(Conflict, match="your own account"), unit_of_work(db.session) as session:
        users.deactivate_user(session, first, clock=clock, actor=first)
    with pytest.raises(Conflict, match="last active admin"), unit_of_work(db.session) as session:
        users.deactivate_user(session, first, clock=clock)
    add(clock, second, users.ADMIN)
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, first, clock=clock, actor=second)
    with pytest.raises(Conflict, match="last active admin"), unit_of_work(db.session) as session:
        users.deactivate_user(session, second, clock=clock)
    db.session.remove()
    assert {u.email: u.active for u in users.list_users(db.session)} == {first: False, second: True}


def test_a_sign_in_link_is_emailed_and_works_once(app: Flask, clock: FixedClock) -> None:
    add(clock)
    url = request_link(clock)
    mail = db.session.scalars(sa.select(OutboxMessage)).one()
    assert (mail.template, mail.to_address) == ("sign_in", EMAIL)
    assert url is not None
    assert url in mail.body_text
    assert url in mail.body_html
    token = token_of(url)
    link = db.session.scalars(sa.select(SignInLink)).one()
    assert token not in link.nonce_hash
    assert link.expires_at == clock.now() + timedelta(minutes=15)
    # Opening it changes nothing.
    for _ in range(2):
        view = sign_ins.open_sign_in(db.session, token, settings=SETTINGS, clock=clock)
        assert (view.email, view.role, view.session_version) == (EMAIL, "release_manager", 1)
    assert consume(clock, token).email == EMAIL
    with pytest.raises(LinkUnusable) as used:
        consume(clock, token)
    assert used.value.reason == "used"


def test_unknown_and_inactive_addresses_get_no_link(app: Flask, clock: FixedClock) -> None:
    assert request_link(clock, "nobody@example.com") is None
    add(clock)
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, EMAIL, clock=clock)
    assert request_link(clock) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


def test_links_expire_after_fifteen_minutes(app: Flask, clock: FixedClock) -> None:
    add(clock)
    token = token_of(request_link(clock))
    clock.advance(timedelta(minutes=14, seconds=59))
    sign_ins.open_sign_in(db.session, token, settings=SETTINGS, clock=clock)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(LinkUnusable) as expired:
        consume(clock, token)
    assert expired.value.reason == "expired"


def test_the_database_expiry_holds_even_with_a_longer_token_age(
    app: Flask, clock: FixedClock
) -> None:
    add(clock)
    longer = sign_ins.SignInSettings(SETTINGS.base_url, SETTINGS.secret_keys, timedelta(hours=1))
    with unit_of_work(db.session) as session:
        token = token_of(sign_ins.request_sign_in(session, EMAIL, settings=SETTINGS, clock=clock))
    clock.advance(timedelta(minutes=20))
    with pytest.raises(LinkUnusable) as expired:
        sign_ins.open_sign_in(db.session, token, settings=longer, clock=clock)
    assert expired.value.reason == "expired"


def test_only_the_newest_link_works(app: Flask, clock: FixedClock) -> None:
    add(clock)
    first = token_of(request_link(clock))
    clock.advance(SIGN_IN_LIMIT.keep_newer_than)  # a younger link is kept, and none sent
    second = token_of(request_link(clock))
    with pytest.raises(LinkUnusable) as superseded:
        consume(clock, first)
    assert superseded.value.reason == "superseded"
    assert consume(clock, second).email == EMAIL


def test_deactivated_accounts_cannot_use_a_link(app: Flask, clock: FixedClock) -> None:
    add(clock)
    token = token_of(request_link(clock))
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, EMAIL, clock=clock)
    with pytest.raises(LinkUnusable) as revoked:
        consume(clock, token)
    assert revoked.value.reason == "revoked"


@pytest.mark.parametrize("how", ["signature", "garbage"])
def test_tampered_links_are_invalid(app: Flask, clock: FixedClock, how: str) -> None:
    add(clock)
    token = token_of(request_link(clock))
    mangled = token[:-2] + ("BB" if token.endswith("AA") else "AA") if how == "signature" else how
    with pytest.raises(TokenInvalid):
        sign_ins.open_sign_in(db.session, mangled, settings=SETTINGS, clock=clock)


def test_a_sign_off_token_is_not_a_sign_in_token(app: Flask, clock: FixedClock) -> None:
    add(clock)
    request_link(clock)
    forged = TokenService(SETTINGS.secret_keys, "signoff", 900, clock).dumps({"l": 1, "n": "x"})
    with pytest.raises(TokenInvalid):
        sign_ins.open_sign_in(db.session, forged, settings=SETTINGS, clock=clock)
    wrong_nonce = SETTINGS.tokens(clock).dumps({"l": 1, "n": "not-the-nonce"})
    with pytest.raises(TokenInvalid):
        sign_ins.open_sign_in(db.session, wrong_nonce, settings=SETTINGS, clock=clock)
    shapeless = SETTINGS.tokens(clock).dumps(["l", 1])
    with pytest.raises(TokenInvalid):
        sign_ins.open_sign_in(db.session, shapeless, settings=SETTINGS, clock=clock)
    assert db.session.scalar(sa.select(User.email)) == EMAIL
