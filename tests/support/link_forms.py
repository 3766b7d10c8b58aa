"""Filling in the emailed-link pages as their recipient would: every request on a sign-off page
answered positively, with the evidence an item may ask for."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.functional.api_helpers import EVIDENCE
from tests.functional.web_helpers import csrf

REQUEST_FIELD = re.compile(r'name="(r\d+)-decision"')
SCENARIO_FIELD = re.compile(r'name="(r\d+-scenario-\d+)"')


def request_prefixes(page: str) -> list[str]:
    """`r<id>` of every request the sign-off page asks about."""
    return sorted(set(REQUEST_FIELD.findall(page)))


def positive_form(page: str) -> dict[str, str]:
    """Pass every item (with evidence), confirm every scenario of a key-user request."""
    form = {"csrf_token": csrf(page)}
    scenarios = SCENARIO_FIELD.findall(page)
    for prefix in request_prefixes(page):
        mine = [s for s in scenarios if s.startswith(f"{prefix}-")]
        if mine:
            form[f"{prefix}-decision"] = "confirmed"
            form.update(dict.fromkeys(mine, "on"))
        else:
            form[f"{prefix}-decision"] = "pass"
            form[f"{prefix}-evidence"] = EVIDENCE
    return form


def sign_link(browser: FlaskClient, path: str, extra: dict[str, str] | None = None) -> TestResponse:
    """Open the link page, answer everything on it positively (plus `extra`), send it."""
    page = browser.get(path)
    assert page.status_code == 200, page.text
    return browser.post(path, data={**positive_form(page.text), **(extra or {})})
