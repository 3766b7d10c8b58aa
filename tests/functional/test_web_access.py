"""Staff pages as a browser sees them: security headers and cookie flags, landmarks, labels and
no inline code on every page the URL map has, and the API's error envelope.

Who may open what (the role × route matrix, CSRF on every POST, other managers' packages) is in
the security suite: tests/security/test_authorization.py."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from gatekeeper.web.errors import error_envelope
from tests.functional.web_helpers import ADMIN, client, sign_in
from tests.support.access import DRAFT, KEY, build_world, known, methods, staff_rules, url


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


class _Page(HTMLParser):
    """Collects what the accessibility checks need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.labelled: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if found.get("id"):
            self.ids.append(found["id"] or "")
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        if tag in ("input", "select", "textarea") and found.get("type") not in (
            "hidden",
            "submit",
        ):
            self.controls.append(found)
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline.append(tag)
        if tag == "script" and not found.get("src"):
            self.inline.append("script")


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
        page = _Page()
        page.feed(response.text)
        assert page.tags.count("main") == 1, path
        assert page.tags.count("h1") == 1, path
        assert len(page.ids) == len(set(page.ids)), f"duplicate ids on {path}"
        assert page.inline == [], f"inline style or script on {path}"
        for control in page.controls:
            assert control.get("id") in page.labelled or control.get("aria-label"), (
                path,
                control,
            )
    error = staff.get("/packages/nope")
    assert error.status_code == 404
    assert "<main" in error.text


def test_api_errors_keep_their_envelope(app: Flask) -> None:
    response = client(app).get("/api/v1/packages/x")
    assert response.status_code == 401
    assert set(response.json or {}) == set(error_envelope("x", "y"))
