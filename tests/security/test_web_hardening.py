"""Web hardening: headers everywhere, cookie flags, Host poisoning, hostile text and paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.app import create_app
from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import TokenInvalid
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs, tokens
from tests.conftest import TEST_KEY, clean_environ
from tests.support.api_tokens import issue_token
from tests.support.flows import approve_payments

pytestmark = pytest.mark.security

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "x' OR '1'='1'; DROP TABLE packages; --"
EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def assert_hardened(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in EXPECTED_HEADERS.items():
        assert headers.get(name) == value, name
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_security_headers_on_html_json_404_and_500(app: Flask) -> None:
    client = app.test_client()
    for path in ("/login", "/s/resend", "/healthz", "/api/v1/openapi.json", "/no-such-page"):
        assert_hardened(client.get(path))

    def boom() -> str:
        raise RuntimeError("secret internals")

    app.view_functions["health.healthz"] = boom
    crashed = client.get("/healthz")
    assert crashed.status_code == 500
    assert_hardened(crashed)
    assert "secret internals" not in crashed.text


def test_session_cookie_flags(tmp_path: Path) -> None:
    app = create_app(
        environ=clean_environ(
            GATEKEEPER_BASE_URL="https://gate.example.com",
            GATEKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite'}",
        ),
        instance_path=str(tmp_path),
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def submit_hostile_package(app: Flask, clock: FixedClock, *, host: str | None = None) -> str:
    """Create and submit through the API, optionally with a poisoned Host header."""
    with unit_of_work(db.session) as session:
        approve_payments(session, clock)
        secret = issue_token(
            session,
            name="rm",
            scopes=("packages:write", "gate:read"),
            owner="release-manager@example.com",
            clock=clock,
        )
    headers = {"Authorization": f"Bearer {secret}"}
    if host:
        headers["Host"] = host
    client = app.test_client()
    created = client.post(
        "/api/v1/packages",
        json={
            "key": "2026.11-xss",
            "title": f"Release {XSS}\r\nBcc: attacker@example.com",
            "environment": "production",
            "applications": [
                {"application": "payments-api", "version": "7.4", "change_summary": XSS}
            ],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    submitted = client.post("/api/v1/packages/2026.11-xss/submit", headers=headers)
    assert submitted.status_code == 200, submitted.text
    return "2026.11-xss"


def test_links_in_email_come_from_the_base_url_never_the_host_header(
    app: Flask, clock: FixedClock
) -> None:
    submit_hostile_package(app, clock, host="evil.example.com")
    bodies = db.session.scalars(sa.select(OutboxMessage.body_text)).all()
    assert bodies
    for body in bodies:
        assert "evil.example.com" not in body
        assert "http://127.0.0.1:5000/s/" in body


def test_hostile_text_is_escaped_in_pages_and_html_email_and_cannot_inject_headers(
    app: Flask, clock: FixedClock
) -> None:
    submit_hostile_package(app, clock)
    messages = db.session.scalars(sa.select(OutboxMessage)).all()
    for message in messages:
        assert "<script>" not in message.body_html
        assert "\r" not in message.subject
        assert "\n" not in message.subject
    token = re.search(r"/s/(\S+)", messages[0].body_text)
    assert token
    page = app.test_client().get(f"/s/{token.group(1)}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/packages/{SQL}/gate",
        f"/api/v1/checklists/{SQL}",
        f"/badges/{SQL}/abc.svg",
        f"/s/{SQL}",
        "/api/v1/packages/%27%20OR%201%3D1%20--/gate",
    ],
)
def test_sql_metacharacters_in_paths_are_just_unknown_names(
    app: Flask, clock: FixedClock, path: str
) -> None:
    with unit_of_work(db.session) as session:
        issued = tokens.create_token(
            session, name="reader", scopes=("gate:read",), owner=None, clock=clock
        )
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {issued.secret}"})
    assert response.status_code in (404, 400)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(packages.Package)) == 0


def test_the_api_ignores_the_session_cookie(app: Flask, clock: FixedClock) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
        session["_fresh"] = True
    response = client.get("/api/v1/checklists")
    assert response.status_code == 401


def test_a_link_works_only_with_the_current_signing_keys(app: Flask, clock: FixedClock) -> None:
    submit_hostile_package(app, clock)
    settings = runtime(app).link_settings()
    rotated = type(settings)(base_url=settings.base_url, secret_keys=("r" * 40,), ttl=settings.ttl)
    body = db.session.scalars(sa.select(OutboxMessage.body_text)).first()
    assert body is not None
    token = body.split("/s/", 1)[1].split()[0]
    assert signoffs.open_link(db.session, token, settings=settings, clock=clock)
    with pytest.raises(TokenInvalid):
        signoffs.open_link(db.session, token, settings=rotated, clock=clock)
    listed = type(settings)(
        base_url=settings.base_url, secret_keys=(TEST_KEY, "r" * 40), ttl=settings.ttl
    )
    assert signoffs.open_link(db.session, token, settings=listed, clock=clock)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/api/v1/packages/a%00b/gate", None),
        ("get", "/api/v1/checklists/a%00b", None),
        ("get", "/s/a%00b", None),
        ("get", "/login?next=/%00", None),
        ("post", "/api/v1/packages", {"key": "k1", "title": "a\x00b", "environment": "p"}),
        ("post", "/api/v1/packages", {"key": "k2", "title": "a\ud800b", "environment": "p"}),
    ],
)
def test_text_no_database_can_store_is_refused_not_a_500(
    app: Flask, clock: FixedClock, method: str, path: str, payload: dict[str, str] | None
) -> None:
    with unit_of_work(db.session) as session:
        secret = issue_token(
            session,
            name="writer",
            scopes=("gate:read", "packages:write"),
            owner="rm@example.com",
            clock=clock,
        )
    headers = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    if payload is None:
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, json={**payload, "applications": []}, headers=headers)
    assert response.status_code == 400, response.text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(packages.Package)) == 0
