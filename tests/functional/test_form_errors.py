"""Forms that come back with errors lead to them: an error summary at the top of the page,
focused on arrival, with one link per problem to its field; every group of radios or
checkboxes is a fieldset named by what it decides."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.domain.clock import FixedClock
from tests.conftest import SAMPLES
from tests.functional.api_helpers import sync_and_approve
from tests.functional.web_helpers import ADMIN, MANAGER, add_staff, client, csrf, post, sign_in
from tests.support import flows
from tests.support.governance import (
    BOARD,
    checklist_dir,
    release,
    sign_everything,
    submit,
    sync,
    tokens,
)
from tests.support.link_forms import REQUEST_FIELD, request_prefixes

ENGINEER = "raj@example.com"  # three payments-api items
KEY_USER = "settlement-lead@example.com"
ITEMS = (
    "Release artifacts were built by CI from a tagged commit",
    "Database migrations were applied to a copy of production data",
    "The rollback plan was rehearsed in staging",
)


class Outline(HTMLParser):
    """What a page offers to find errors by: element ids, the error summary (its attributes and
    links), and each fieldset with its legend and the names of its radios and checkboxes."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.summary: dict[str, str | None] | None = None
        self.links: list[list[str]] = []  # [href, text] in the summary
        self.fieldsets: list[dict[str, str]] = []  # legend, controls (space-separated names)
        self._open: list[dict[str, str]] = []
        self._depth = 0  # inside the summary: how many divs deep
        self._legend = self._link = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.ids.add(found.get("id") or "")
        if found.get("data-testid") == "error-summary":
            self.summary, self._depth = found, 1
        elif self._depth and tag == "div":
            self._depth += 1
        if self._depth and tag == "a":
            self.links.append([found.get("href") or "", ""])
            self._link = True
        if tag == "fieldset":
            self._open.append({"legend": "", "controls": ""})
            self.fieldsets.append(self._open[-1])
        self._legend = self._legend or tag == "legend"
        if tag == "input" and found.get("type") in ("radio", "checkbox"):
            for fieldset in self._open:
                fieldset["controls"] += f" {found.get('name')}"

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset":
            self._open.pop()
        self._legend = self._legend and tag != "legend"
        self._link = self._link and tag != "a"
        if self._depth and tag == "div":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._legend:
            self._open[-1]["legend"] += data
        if self._link:
            self.links[-1][1] += data

    def group_of(self, name: str) -> dict[str, str]:
        """The innermost fieldset holding the controls called `name`."""
        return [f for f in self.fieldsets if name in f["controls"].split()][-1]


def summary(page: str) -> list[tuple[str, str]]:
    """The error summary's links (target id, text); fails unless it is at the top, focused on
    arrival, and every link leads to an element of the page."""
    outline = Outline(page)
    assert outline.summary is not None, "no error summary"
    assert "autofocus" in outline.summary, "focus moves to the summary"
    assert outline.summary.get("tabindex") == "-1"
    assert page.index('data-testid="error-summary"') < page.index("<h1"), "at the top"
    found = [(href.removeprefix("#"), " ".join(text.split())) for href, text in outline.links]
    for target, text in found:
        assert target in outline.ids, f"{text!r} links to #{target}, which is not on the page"
    return found


def in_page_order(page: str) -> list[str]:
    """`r<id>` of every request the sign-off page asks about, top to bottom."""
    return list(dict.fromkeys(REQUEST_FIELD.findall(page)))


@pytest.fixture
def signoff_links(app: Flask, clock: FixedClock) -> dict[str, str]:
    return {who: f"/s/{token}" for who, token in flows.prepare(app, clock).items()}


def test_each_group_of_the_sign_off_page_is_named_by_what_it_decides(
    app: Flask, signoff_links: dict[str, str]
) -> None:
    page = client(app).get(signoff_links[ENGINEER]).text
    assert 'aria-label="Decision"' not in page
    outline = Outline(page)
    for prefix, item in zip(in_page_order(page), ITEMS, strict=True):
        group = outline.group_of(f"{prefix}-decision")
        assert item in group["legend"], group
        assert group["controls"].split() == [f"{prefix}-decision"] * 3
    page = client(app).get(signoff_links[KEY_USER]).text
    outline = Outline(page)
    (prefix,) = request_prefixes(page)
    assert "payments-api" in outline.group_of(f"{prefix}-decision")["legend"]
    scenarios = outline.group_of(f"{prefix}-scenario-0")
    assert "scenario" in scenarios["legend"].lower()
    assert len(scenarios["controls"].split()) == 3


def test_an_incomplete_sign_off_leads_to_each_problem(
    app: Flask, signoff_links: dict[str, str]
) -> None:
    browser = client(app)
    path = signoff_links[ENGINEER]
    page = browser.get(path).text
    first, *others = in_page_order(page)
    response = browser.post(
        path, data={"csrf_token": csrf(page), f"{first}-decision": "not_applicable"}
    )
    assert response.status_code == 422
    found = summary(response.text)
    assert [target for target, _ in found] == [
        f"{first}-comment",
        *(f"{p}-decision-pass" for p in others),
    ]
    for (_, text), item in zip(found, ITEMS, strict=True):
        assert item in text
    assert "say why this item does not apply" in found[0][1]
    assert all("Choose a decision." in text for _, text in found[1:])


def test_a_key_user_who_skipped_a_scenario_is_led_to_it(
    app: Flask, signoff_links: dict[str, str]
) -> None:
    browser = client(app)
    path = signoff_links[KEY_USER]
    page = browser.get(path).text
    (prefix,) = request_prefixes(page)
    form = {
        "csrf_token": csrf(page),
        f"{prefix}-decision": "confirmed",
        f"{prefix}-scenario-0": "on",
    }
    response = browser.post(path, data=form)
    assert response.status_code == 422
    ((target, text),) = summary(response.text)
    assert target == f"{prefix}-scenario-1"
    assert "confirm every scenario" in text


def test_the_review_page_leads_to_its_problems(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    sync(app, clock, checklist_dir(tmp_path), author="dev@example.com")
    path = f"/review/{tokens('review', about='(payments-api)')[BOARD]}"
    browser = client(app)
    page = browser.get(path).text
    assert Outline(page).group_of("action")["legend"].strip() == "Your decision"
    nothing = browser.post(path, data={"csrf_token": csrf(page)})
    assert nothing.status_code == 422
    assert [t for t, _ in summary(nothing.text)] == ["action-approve"]
    unsaid = browser.post(path, data={"csrf_token": csrf(page), "action": "approve"})
    assert [t for t, _ in summary(unsaid.text)] == ["consulted"]


def test_staff_forms_lead_to_their_problems(app: Flask, clock: FixedClock) -> None:
    add_staff(clock)
    sync_and_approve(SAMPLES, clock)
    cases: list[tuple[FlaskClient, str, dict[str, str], list[str]]] = [
        (client(app), "/login", {"email": "not-an-address"}, ["login-email"]),
        (client(app), "/s/resend", {"email": "", "package": ""}, ["email", "package"]),
        (
            sign_in(app, ADMIN),
            "/users/",
            {"email": "", "name": "", "role": "admin"},
            ["account-email", "account-name"],
        ),
        (
            sign_in(app, MANAGER),
            "/packages/new",
            {"key": "", "title": "", "environment": "production"},
            ["package-key", "package-title", "app-identity-platform"],
        ),
    ]
    for browser, path, form, targets in cases:
        response = post(browser, path, form)
        assert response.status_code == 422, path
        assert [t for t, _ in summary(response.text)] == targets, path


def test_the_report_form_leads_to_its_problems(app: Flask, clock: FixedClock) -> None:
    sync_and_approve(SAMPLES, clock)
    submit(clock, "2026.11-reported", {"payments-api": "7.4.0"})
    sign_everything(clock, "2026.11-reported")
    release(app, clock, "2026.11-reported")
    path = f"/report/{tokens('report')['refunds-desk@example.com']}"
    browser = client(app)
    response = browser.post(path, data={"csrf_token": csrf(browser.get(path).text)})
    assert response.status_code == 422
    assert [t for t, _ in summary(response.text)] == [
        "application",
        "what_happened",
        "impact",
        "could_have_caught",
    ]
