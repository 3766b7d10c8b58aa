"""Staff single sign-on against a real OpenID provider on loopback: accounts made on first
sign-in, roles from groups at every sign-in, and every way a callback can be forged, replayed
or carry a token that must be refused."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, User
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.conftest import dispose, make_app
from tests.functional.web_helpers import account, add_user, client, csrf, sign_in
from tests.support.flows import prepare
from tests.support.html_checks import assert_well_formed_page
from tests.support.oidc import (
    CLIENT_ID,
    Provider,
    path_and_query,
    running_provider,
    sso_environ,
)

ANA = "ana.lima@example.com"
AppFactory = Callable[..., Flask]


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def make_sso_app(
    database_url: str, tmp_path: Path, clock: FixedClock, provider: Provider
) -> Iterator[AppFactory]:
    """Build the app pointed at a provider (the module's unless given), with extra settings."""
    provider.seen.clear()
    provider.token_issuer_host = provider.discovery_issuer_host = None
    provider.discovery_changes.clear()
    with ExitStack() as stack:

        def build(idp: Provider | None = None, **settings: str) -> Flask:
            app = make_app(
                database_url,
                tmp_path / "instance",
                clock,
                **sso_environ(idp or provider, **settings),
            )
            stack.callback(dispose, app)
            stack.enter_context(app.app_context())
            return app

        yield build


@pytest.fixture
def sso_app(make_sso_app: AppFactory) -> Flask:
    return make_sso_app()


def begin(browser: FlaskClient, next_path: str | None = None) -> str:
    """Press "Sign in with your organisation account"; return the provider URL it leads to."""
    login = "/login" + (f"?{urlencode({'next': next_path})}" if next_path else "")
    page = browser.get(login)
    assert page.status_code == 200, page.text
    assert 'data-testid="sso-start"' in page.text
    start = "/login/oidc" + (f"?{urlencode({'next': next_path})}" if next_path else "")
    answer = browser.post(start, data={"csrf_token": csrf(page.text)})
    assert answer.status_code == 302, answer.text
    return str(answer.headers["Location"])


def come_back(browser: FlaskClient, callback: str) -> TestResponse:
    assert callback.startswith("http://127.0.0.1:5000/login/oidc/callback?"), callback
    return browser.get(path_and_query(callback))


def sso_sign_in(
    app: Flask, provider: Provider, subject: str, browser: FlaskClient | None = None
) -> tuple[FlaskClient, TestResponse]:
    browser = browser or client(app)
    return browser, come_back(browser, provider.authorize(begin(browser), subject))


def refused(response: TestResponse, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert f'data-reason="{reason}"' in response.text, response.text


def signed_in_as(browser: FlaskClient) -> str | None:
    page = browser.get("/")
    if page.status_code != 200:
        return None
    return page.text.split('data-testid="signed-in-as"', 1)[1].split("</span>\n", 1)[0]


def trail(action: str) -> list[tuple[str, dict[str, Any]]]:
    db.session.remove()
    rows = db.session.execute(
        sa.select(AuditEvent.actor, AuditEvent.details)
        .where(AuditEvent.action == action)
        .order_by(AuditEvent.seq)
    ).all()
    db.session.remove()
    return [(actor, json.loads(details)) for actor, details in rows]


def test_the_first_sign_in_makes_the_account_with_the_role_from_the_groups(
    sso_app: Flask, provider: Provider
) -> None:
    subject = provider.person(ANA, name="Ana Lima", groups=["release-managers", "everyone"])
    browser = client(sso_app)
    authorization = begin(browser)
    query = parse_qs(urlsplit(authorization).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["http://127.0.0.1:5000/login/oidc/callback"]
    assert query["scope"] == ["openid email profile"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"][0]
    assert query["state"][0]
    answer = come_back(browser, provider.authorize(authorization, subject))
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"] == "/"
    assert "Ana Lima" in (signed_in_as(browser) or "")
    assert "Release manager" in (signed_in_as(browser) or "")
    # PKCE: the code went back with the verifier whose S256 digest was sent at the start.
    (exchange,) = provider.token_requests()
    verifier = exchange.form["code_verifier"][0]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert digest.decode() == query["code_challenge"][0]
    made = account(ANA)
    assert made is not None
    assert (made.name, made.role, made.active) == ("Ana Lima", "release_manager", True)
    assert [actor for actor, _ in trail("user.added")] == ["sso"]
    ((actor, details),) = trail("user.signed_in")
    assert actor == ANA
    assert details == {
        "method": "sso",
        "issuer": provider.url,
        "subject": subject,
        "role": "release_manager",
    }


def test_roles_follow_the_groups_at_every_sign_in(
    sso_app: Flask, provider: Provider, clock: FixedClock
) -> None:
    add_user(clock, "admin@example.com", users.ADMIN)
    subject = provider.person(ANA, groups=["release-managers", "gk-admins", "release-board"])
    laptop, _ = sso_sign_in(sso_app, provider, subject)
    assert "Admin" in (signed_in_as(laptop) or ""), "the strongest of the mapped roles"

    provider.person(ANA, groups=["release-board"])
    phone, _ = sso_sign_in(sso_app, provider, subject)
    assert "Governance reviewer" in (signed_in_as(phone) or "")
    assert signed_in_as(laptop) is None, "the session opened as admin ended"
    ((actor, change),) = trail("user.role_changed")
    assert actor == "sso"
    assert (change["from"], change["to"], change["groups"]) == (
        "admin",
        "governance_reviewer",
        ["release-board"],
    )

    provider.person(ANA, groups=["everyone"])
    browser, answer = sso_sign_in(sso_app, provider, subject)
    refused(answer, 403, "no_role")
    assert "None of your groups" in answer.text
    assert signed_in_as(browser) is None
    assert signed_in_as(phone) is None, "a removed group removes the role everywhere"
    gone = account(ANA)
    assert gone is not None
    assert (gone.role, gone.active) == (None, True)
    assert trail("user.role_changed")[-1][1]["to"] is None
    admin = sign_in(sso_app, "admin@example.com")
    assert '<td data-label="Role">No role</td>' in admin.get("/users/").text
    assert trail("user.sign_in_refused")[-1] == (
        ANA,
        {"method": "sso", "issuer": provider.url, "subject": subject, "reason": "no_role"},
    )

    provider.person(ANA, groups=["release-managers"])
    back, _ = sso_sign_in(sso_app, provider, subject)
    assert "Release manager" in (signed_in_as(back) or "")


def test_nobody_gets_an_account_without_a_mapped_group(sso_app: Flask, provider: Provider) -> None:
    subject = provider.person(ANA, groups=["everyone", "Release-Managers"])
    browser, answer = sso_sign_in(sso_app, provider, subject)
    refused(answer, 403, "no_role")
    assert signed_in_as(browser) is None
    assert account(ANA) is None
    assert trail("user.added") == []
    assert [actor for actor, _ in trail("user.sign_in_refused")] == [ANA]


def test_a_deactivated_account_stays_out_whatever_the_provider_says(
    sso_app: Flask, provider: Provider, clock: FixedClock
) -> None:
    add_user(clock, ANA, users.RELEASE_MANAGER)
    add_user(clock, "admin@example.com", users.ADMIN)
    with unit_of_work(db.session) as session:
        users.deactivate_user(session, ANA, clock=clock, actor="admin@example.com")
    subject = provider.person(ANA, groups=["gk-admins"])
    browser, answer = sso_sign_in(sso_app, provider, subject)
    refused(answer, 403, "deactivated")
    assert signed_in_as(browser) is None
    kept = account(ANA)
    assert kept is not None
    assert (kept.role, kept.active) == ("release_manager", False)
    assert trail("user.role_changed") == []


def test_an_existing_account_is_found_by_its_address_in_any_case(
    sso_app: Flask, provider: Provider, clock: FixedClock
) -> None:
    add_user(clock, ANA, users.GOVERNANCE_REVIEWER, name="Ana")
    subject = provider.person("Ana.Lima@Example.COM", groups=["release-managers"])
    browser, _ = sso_sign_in(sso_app, provider, subject)
    assert "Release manager" in (signed_in_as(browser) or "")
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    assert trail("user.added")[0][0] == "cli", "only the account added before"


def test_an_id_token_from_another_issuer_is_refused(sso_app: Flask, provider: Provider) -> None:
    subject = provider.person(ANA, groups=["gk-admins"])
    provider.token_issuer_host = provider.other_issuer_host
    browser, answer = sso_sign_in(sso_app, provider, subject)
    refused(answer, 400, "unverified")
    assert signed_in_as(browser) is None
    assert account(ANA) is None


def press_start(browser: FlaskClient) -> TestResponse:
    page = browser.get("/login")
    return browser.post("/login/oidc", data={"csrf_token": csrf(page.text)})


def test_a_provider_that_names_another_issuer_is_not_used(
    sso_app: Flask, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.discovery_issuer_host = provider.other_issuer_host
    answer = press_start(client(sso_app))
    refused(answer, 503, "unavailable")
    assert "Admins can still sign in with an emailed link" in answer.text
    assert "not GATEKEEPER_OIDC_ISSUER" in caplog.text
    assert provider.token_requests() == []


@pytest.mark.parametrize(
    ("changes", "logged"),
    [
        ({"jwks_uri": None}, "the discovery document has no jwks_uri"),
        (
            {"authorization_endpoint": "https://login.example.com/authorize"},
            "is not on the issuer's origin",
        ),
    ],
)
def test_a_provider_the_flow_cannot_use_is_not_used(
    sso_app: Flask,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, object],
    logged: str,
) -> None:
    provider.discovery_changes.update(changes)
    refused(press_start(client(sso_app)), 503, "unavailable")
    assert logged in caplog.text


def test_pages_let_forms_lead_to_the_provider_only_with_single_sign_on(
    sso_app: Flask, app: Flask, provider: Provider
) -> None:
    with_sso = client(sso_app).get("/login").headers["Content-Security-Policy"]
    assert f"form-action 'self' {provider.url};" in with_sso
    without = client(app).get("/login").headers["Content-Security-Policy"]
    assert "form-action 'self';" in without


def test_a_forged_state_or_one_from_another_browser_signs_nobody_in(
    sso_app: Flask, provider: Provider
) -> None:
    subject = provider.person(ANA, groups=["gk-admins"])
    attacker = client(sso_app)
    callback = provider.authorize(begin(attacker), subject)
    forged = callback.replace("state=", "state=x")
    refused(come_back(attacker, forged), 400, "not_started")
    # Login CSRF: the attacker's own callback, opened in the victim's browser.
    victim = client(sso_app)
    victim.get("/login")
    refused(come_back(victim, callback), 400, "not_started")
    assert signed_in_as(victim) is None
    assert provider.token_requests() == [], "refused before the code is exchanged"
    assert come_back(attacker, callback).status_code == 302, "the real one still works"


def test_an_id_token_with_another_nonce_is_refused(sso_app: Flask, provider: Provider) -> None:
    subject = provider.person(ANA, groups=["gk-admins"])
    browser = client(sso_app)
    authorization = begin(browser)
    nonce = parse_qs(urlsplit(authorization).query)["nonce"][0]
    replayed = authorization.replace(f"nonce={nonce}", "nonce=a-nonce-of-someone-else")
    answer = come_back(browser, provider.authorize(replayed, subject))
    refused(answer, 400, "unverified")
    assert len(provider.token_requests()) == 1
    assert signed_in_as(browser) is None
    assert account(ANA) is None


def test_an_expired_id_token_is_refused(make_sso_app: AppFactory) -> None:
    with running_provider(token_lifetime=timedelta(minutes=-10)) as stale:
        app = make_sso_app(stale)
        subject = stale.person(ANA, groups=["gk-admins"])
        browser, answer = sso_sign_in(app, stale, subject)
        refused(answer, 400, "unverified")
        assert len(stale.token_requests()) == 1
        assert signed_in_as(browser) is None
        assert account(ANA) is None


@pytest.mark.parametrize(
    ("claims", "reason", "says"),
    [
        ({"email": None}, "no_email", "did not send your email address"),
        ({"email": ""}, "no_email", "did not send your email address"),
        ({"email": "not an address"}, "no_email", "not valid"),
        ({"email_verified": False}, "email_unverified", "has not verified the address"),
        ({"email_verified": "false"}, "email_unverified", "has not verified the address"),
        ({"email_verified": None}, "email_unverified", "has not verified the address"),
    ],
)
def test_an_address_the_provider_does_not_vouch_for_is_refused(
    sso_app: Flask, provider: Provider, claims: dict[str, object], reason: str, says: str
) -> None:
    subject = provider.person(ANA, groups=["gk-admins"], sub="ana-subject", claims=claims)
    browser, answer = sso_sign_in(sso_app, provider, subject)
    refused(answer, 403, reason)
    assert says in answer.text
    assert signed_in_as(browser) is None
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert trail("user.sign_in_refused")[0][1]["reason"] == reason


def test_an_unstated_verification_is_accepted_only_when_configured(
    make_sso_app: AppFactory, provider: Provider
) -> None:
    app = make_sso_app(GATEKEEPER_OIDC_REQUIRE_VERIFIED_EMAIL="false")
    subject = provider.person(ANA, groups=["release-managers"], claims={"email_verified": None})
    browser, _ = sso_sign_in(app, provider, subject)
    assert "Release manager" in (signed_in_as(browser) or "")
    provider.person(ANA, groups=["release-managers"], claims={"email_verified": False})
    _, answer = sso_sign_in(app, provider, subject)
    refused(answer, 403, "email_unverified")


@pytest.mark.parametrize(
    ("wanted", "lands_on"),
    [
        ("/checklists", "/checklists"),
        ("https://evil.example", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_the_return_address_stays_on_this_site(
    sso_app: Flask, provider: Provider, wanted: str, lands_on: str
) -> None:
    subject = provider.person(ANA, groups=["release-managers"])
    browser = client(sso_app)
    answer = come_back(browser, provider.authorize(begin(browser, next_path=wanted), subject))
    assert answer.status_code == 302
    assert answer.headers["Location"] == lands_on


def test_a_callback_works_once_even_with_the_cookie_replayed(
    sso_app: Flask, provider: Provider
) -> None:
    subject = provider.person(ANA, groups=["release-managers"])
    browser = client(sso_app)
    callback = provider.authorize(begin(browser), subject)
    cookie = browser.get_cookie("session")
    assert cookie is not None
    assert come_back(browser, callback).status_code == 302
    refused(come_back(browser, callback), 400, "not_started")
    replay = client(sso_app)
    replay.set_cookie("session", cookie.value)
    answer = come_back(replay, callback)
    refused(answer, 400, "used")
    assert "completed already" in answer.text
    assert signed_in_as(replay) is None
    assert len(provider.token_requests()) == 1, "the replay never reached the provider"
    assert len(trail("user.signed_in")) == 1


def test_a_sign_in_must_come_back_within_ten_minutes(
    sso_app: Flask, provider: Provider, clock: FixedClock
) -> None:
    subject = provider.person(ANA, groups=["release-managers"])
    browser = client(sso_app)
    callback = provider.authorize(begin(browser), subject)
    clock.advance(timedelta(minutes=10, seconds=1))
    refused(come_back(browser, callback), 400, "expired")
    assert signed_in_as(browser) is None


def test_only_the_newest_sign_in_of_a_browser_finishes(sso_app: Flask, provider: Provider) -> None:
    subject = provider.person(ANA, groups=["release-managers"])
    browser = client(sso_app)
    first = provider.authorize(begin(browser), subject)
    sizes = []
    for _ in range(30):
        latest = provider.authorize(begin(browser), subject)
        cookie = browser.get_cookie("session")
        assert cookie is not None
        sizes.append(len(cookie.value))
    assert max(sizes) - min(sizes) < 20, "the cookie does not grow with every attempt"
    refused(come_back(browser, first), 400, "not_started")
    assert come_back(browser, latest).status_code == 302
    assert signed_in_as(browser) is not None


def test_the_provider_saying_no_is_explained(sso_app: Flask, provider: Provider) -> None:
    browser = client(sso_app)
    answer = come_back(browser, provider.deny(begin(browser)))
    refused(answer, 403, "provider_refused")
    assert 'data-testid="sso-retry"' in answer.text


def test_an_unreachable_provider_is_explained(make_sso_app: AppFactory) -> None:
    with running_provider() as gone:
        app = make_sso_app(gone)
    answer = press_start(client(app))
    refused(answer, 503, "unavailable")
    assert "could not reach your identity provider" in answer.text


def test_starting_needs_the_sign_in_page_csrf_token(sso_app: Flask, provider: Provider) -> None:
    answer = client(sso_app).post("/login/oidc")
    assert answer.status_code == 400
    assert "CSRF token is missing" in answer.text
    assert provider.seen == [], "nothing started"


def ask_for_link(browser: FlaskClient, email: str) -> TestResponse:
    page = browser.get("/login")
    return browser.post("/login", data={"csrf_token": csrf(page.text), "email": email})


def links_sent() -> list[str]:
    db.session.remove()
    sent = db.session.scalars(
        sa.select(OutboxMessage.to_address).where(OutboxMessage.template == "sign_in")
    ).all()
    db.session.remove()
    return list(sent)


def test_by_default_only_admins_get_an_emailed_link(
    sso_app: Flask, clock: FixedClock, provider: Provider
) -> None:
    add_user(clock, "admin@example.com", users.ADMIN)
    add_user(clock, "manager@example.com", users.RELEASE_MANAGER)
    browser = client(sso_app)
    page = browser.get("/login").text
    assert "Admins can sign in with an emailed link instead" in page
    answers = {
        email: ask_for_link(browser, email).text.replace(email, "EMAIL")
        for email in ("admin@example.com", "manager@example.com", "nobody@example.com")
    }
    assert len(set(answers.values())) == 1
    assert "active Gatekeeper admin account" in answers["admin@example.com"]
    assert links_sent() == ["admin@example.com"]


def test_links_for_everyone_still_skip_accounts_without_a_role(
    make_sso_app: AppFactory, provider: Provider, clock: FixedClock
) -> None:
    app = make_sso_app(GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK="all")
    add_user(clock, "manager@example.com", users.RELEASE_MANAGER)
    subject = provider.person(ANA, groups=["release-managers"])
    sso_sign_in(app, provider, subject)
    provider.person(ANA, groups=[])
    sso_sign_in(app, provider, subject)
    browser = client(app)
    assert "Or sign in by email" in browser.get("/login").text
    ask_for_link(browser, "manager@example.com")
    ask_for_link(browser, ANA)
    assert links_sent() == ["manager@example.com"]


def test_links_off_means_single_sign_on_only_while_signing_links_still_work(
    make_sso_app: AppFactory, clock: FixedClock
) -> None:
    app = make_sso_app(GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK="off")
    add_user(clock, "admin@example.com", users.ADMIN)
    browser = client(app)
    page = browser.get("/login").text
    assert 'data-testid="sso-start"' in page
    assert 'data-testid="login-form"' not in page
    ask_for_link(browser, "admin@example.com")
    assert links_sent() == []
    # Engineers and key users are known by their address and need no account, as before.
    tokens = prepare(app, clock)
    for token in tokens.values():
        assert client(app).get(f"/s/{token}").status_code == 200


def test_without_single_sign_on_there_is_no_callback(app: Flask) -> None:
    assert client(app).get("/login/oidc/callback?code=x&state=y").status_code == 404
    assert 'data-testid="sso-start"' not in client(app).get("/login").text


def test_the_sign_in_and_problem_pages_are_well_formed(
    make_sso_app: AppFactory, provider: Provider
) -> None:
    for fallback in ("admins", "all", "off"):
        app = make_sso_app(GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK=fallback)
        assert_well_formed_page(f"/login ({fallback})", client(app).get("/login").text)
    browser = client(app)
    answer = come_back(browser, provider.deny(begin(browser)))
    assert_well_formed_page("provider_refused", answer.text)
    subject = provider.person(ANA, groups=[])
    assert_well_formed_page("no_role", sso_sign_in(app, provider, subject)[1].text)


def test_starting_is_rate_limited(sso_app: Flask) -> None:
    browser = client(sso_app)
    token = csrf(browser.get("/login").text)
    codes = [browser.post("/login/oidc", data={"csrf_token": token}).status_code for _ in range(61)]
    assert codes[:60] == [302] * 60
    assert codes[60] == 429
