"""Staff pages as a browser sees them: security headers and cookie flags, landmarks, labels and
no inline code on every page the URL map has, and the API's error envelope.

Who may open what (the role × route matrix, CSRF on every POST, other managers' packages) is in
the security suite: tests/security/test_authorization.py."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from gatekeeper.web.errors import error_envelope
from tests.functional.web_helpers import ADMIN, client, sign_in
from tests.support.access import DRAFT, KEY, build_world, known, methods, staff_rules, url
from tests.support.html_checks import assert_well_formed_page


@pytest.fixture
def world(app: Flask, clock: FixedClock) -> dict[str, Any]:
    return build_world(clock)


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
        assert_well_formed_page(path, response.text)
    error = staff.get("/packages/nope")
    assert error.status_code == 404
    assert "<main" in error.text


def test_api_errors_keep_their_envelope(app: Flask) -> None:
    response = client(app).get("/api/v1/packages/x")
    assert response.status_code == 401
    assert set(response.json or {}) == set(error_envelope("x", "y"))
