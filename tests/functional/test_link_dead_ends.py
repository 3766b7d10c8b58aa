"""Where an emailed link ends: the thank-you page and every page of a link that can no longer
be used say what was recorded (item by item, in words), when, what changed since, and what to
do next."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import findings, packages, reviews, signoffs
from tests.conftest import SAMPLES
from tests.functional.api_helpers import EVIDENCE, sync_and_approve
from tests.functional.web_helpers import client, csrf, words
from tests.support.governance import (
    BOARD,
    MANAGER,
    UX_LEAD,
    checklist_dir,
    release,
    sign_everything,
    sync,
    tokens,
)
from tests.support.link_forms import positive_form, request_prefixes, sign_link
from tests.support.pages import PROBLEM

KEY = "2026.11-ends"
ENGINEER = "raj@example.com"  # three payments-api items
SECURITY = "sec-oncall@example.com"  # payments-api only, answers nothing
TRANSLATOR = "l10n@example.com"  # one storefront-web item
KEY_USER = "settlement-lead@example.com"
MIGRATIONS = "Database migrations were applied to a copy of production data and rolled back"
SCENARIOS = (  # the first two of payments-api's key-user scenarios
    "Run the end-of-day settlement report for yesterday",
    "Refund a card payment from the back-office screen",
)


@pytest.fixture
def submitted(app: Flask, clock: FixedClock) -> dict[str, str]:
    """payments-api and storefront-web in review; each signer's link path by address."""
    sync_and_approve(SAMPLES, clock)
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY,
                "Refunds queue",
                "production",
                None,
                (
                    packages.ApplicationSpec("payments-api", "7.4.0", "Refunds go through a queue"),
                    packages.ApplicationSpec("storefront-web", "2026.11.2", "Vouchers"),
                ),
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )
    return links(1)


def links(revision: int) -> dict[str, str]:
    return {
        who: f"/s/{token}"
        for who, token in tokens("s", about=f"{KEY} (revision {revision})").items()
    }


def change_payments(app: Flask, clock: FixedClock) -> None:
    clock.advance(timedelta(hours=2))
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            KEY,
            packages.PackageChanges(
                applications=(
                    packages.ApplicationSpec("payments-api", "7.4.1", "Refund rounding hotfix"),
                    packages.ApplicationSpec("storefront-web", "2026.11.2", "Vouchers"),
                )
            ),
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )


def test_the_thank_you_and_the_used_link_show_what_was_answered(
    app: Flask, submitted: dict[str, str]
) -> None:
    browser = client(app)
    page = browser.get(submitted[ENGINEER]).text
    first = request_prefixes(page)[0]
    done = browser.post(
        submitted[ENGINEER],
        data={**positive_form(page), f"{first}-comment": "Checked on the staging copy"},
    )
    assert done.status_code == 200
    assert "Thank you — recorded" in done.text
    for shown in (words(done.text), words(browser.get(submitted[ENGINEER]).text)):
        assert MIGRATIONS in shown
        assert "migrations-reversible" not in shown, "items by their text, not their id"
        assert "Checked on the staging copy" in shown
        assert EVIDENCE in shown
        assert "pass, 2026-11-23 09:00 UTC" in shown
    used = browser.get(submitted[ENGINEER])
    assert used.status_code == 410
    text = words(used.text)
    assert "Already answered" in text
    assert "You answered on 2026-11-23 09:00 UTC" in text
    assert "Nothing more to do" in text
    assert f"tell {MANAGER}" in text, "who to tell if an answer was wrong"


def test_a_key_users_used_link_shows_the_scenarios_they_confirmed(
    app: Flask, submitted: dict[str, str]
) -> None:
    browser = client(app)
    path = submitted[KEY_USER]
    (prefix,) = request_prefixes(browser.get(path).text)
    words = "Yesterday's totals are off by one refund"
    form = {
        "csrf_token": csrf(browser.get(path).text),
        f"{prefix}-decision": "problem",
        f"{prefix}-comment": words,
        f"{prefix}-scenario-0": "on",
    }
    assert browser.post(path, data=form).status_code == 200
    used = browser.get(path).text
    assert "problem reported" in used
    assert words.replace("'", "&#39;") in used
    assert all(s in used for s in SCENARIOS)
    tried, untried = (used.split(s)[0].rsplit("<li", 1)[1] for s in SCENARIOS)
    assert 'data-confirmed="yes"' in tried
    assert 'data-confirmed="no"' in untried


def test_a_used_link_after_the_release_changed_says_a_new_link_was_sent(
    app: Flask, clock: FixedClock, submitted: dict[str, str]
) -> None:
    browser = client(app)
    assert sign_link(browser, submitted[ENGINEER]).status_code == 200
    assert sign_link(browser, submitted[TRANSLATOR]).status_code == 200
    change_payments(app, clock)
    used = browser.get(submitted[ENGINEER])
    assert used.status_code == 410
    text = words(used.text)
    assert "Already answered" in text
    assert "You answered on 2026-11-23 09:00 UTC" in text
    assert "Release 2026.11-ends changed on 2026-11-23 11:00 UTC (revision 2)" in text
    assert "payments-api: version 7.4.0 → 7.4.1" in text
    assert "Your answers for payments-api no longer count" in text
    assert "A new link was emailed to you on 2026-11-23 11:00 UTC" in text
    assert ENGINEER in links(2), "and it was"
    # storefront-web did not change: the translator's answer still counts.
    carried = words(browser.get(submitted[TRANSLATOR]).text)
    assert "Release 2026.11-ends changed on 2026-11-23 11:00 UTC (revision 2)" in carried
    assert "Your answers still count" in carried
    assert "Nothing more to do" in carried
    assert "A new link was emailed" not in carried


def test_a_superseded_link_says_what_changed_and_when_the_new_one_went_out(
    app: Flask, clock: FixedClock, submitted: dict[str, str]
) -> None:
    change_payments(app, clock)
    old = client(app).get(submitted[SECURITY])
    assert old.status_code == 410
    text = words(old.text)
    assert "This release changed" in text
    assert "payments-api: version 7.4.0 → 7.4.1" in text
    assert "A new link was emailed to you on 2026-11-23 11:00 UTC" in text
    assert "2 things are still waiting for your answer" in text
    # A fresh link asked for by the signer replaces the one of the same revision.
    current = links(2)[SECURITY]
    clock.advance(timedelta(minutes=30))
    with unit_of_work(db.session) as session:
        signoffs.resend_link(
            session,
            email=SECURITY,
            package_key=KEY,
            settings=runtime(app).link_settings(),
            clock=clock,
        )
    replaced = words(client(app).get(current).text)
    assert "A newer link was sent" in replaced
    assert "A new link was emailed to you on 2026-11-23 11:30 UTC" in replaced
    assert "This release changed" not in replaced


def test_a_link_of_a_cancelled_release_says_so_and_when(
    app: Flask, clock: FixedClock, submitted: dict[str, str]
) -> None:
    clock.advance(timedelta(hours=1))
    with unit_of_work(db.session) as session:
        signoffs.cancel_and_revoke(session, KEY, actor=MANAGER, clock=clock, overdue_policy="block")
    page = client(app).get(submitted[SECURITY])
    assert page.status_code == 410
    text = words(page.text)
    assert "no longer needs this sign-off" in text
    assert "cancelled on 2026-11-23 10:00 UTC" in text
    assert "Nothing to do" in text


def test_an_expired_link_says_how_to_get_a_fresh_one(
    app: Flask, clock: FixedClock, submitted: dict[str, str]
) -> None:
    clock.advance(runtime(app).link_settings().ttl + timedelta(seconds=1))
    page = client(app).get(submitted[SECURITY])
    assert page.status_code == 410
    assert "This link has expired" in page.text
    assert 'href="/s/resend"' in page.text
    assert "the release key is in the email's subject" in words(page.text)


# --- review and report links ------------------------------------------------------------------


@pytest.fixture
def review_links(app: Flask, clock: FixedClock, tmp_path: Path) -> dict[str, str]:
    """Every sample synced, waiting for review: the review link path of each reviewer of
    storefront-web (two reviewers)."""
    sync(app, clock, checklist_dir(tmp_path), author="dev@example.com")
    return {who: f"/review/{t}" for who, t in tokens("review", about="(storefront-web)").items()}


def test_a_used_review_link_shows_the_review_and_a_decided_one_whose(
    app: Flask, clock: FixedClock, review_links: dict[str, str]
) -> None:
    clock.advance(timedelta(hours=1))
    consulted, notes = "The merchandising team, on a call", "Vouchers need a scenario next time"
    with unit_of_work(db.session) as session:
        reviews.submit_review(
            session,
            review_links[BOARD].removeprefix("/review/"),
            reviews.ReviewDecision("approve", consulted=consulted, notes=notes),
            settings=runtime(app).governance_settings(),
            clock=clock,
        )
    for who, heading in ((BOARD, "Already reviewed"), (UX_LEAD, "Someone already reviewed")):
        page = client(app).get(review_links[who])
        assert page.status_code == 410
        text = words(page.text)
        assert heading in text
        assert "approved by release-board@example.com on 2026-11-23 10:00 UTC" in text
        assert consulted in text
        assert notes in text
        assert "Nothing more to do" in text


def test_a_used_report_link_shows_the_report_and_what_became_of_it(
    app: Flask, clock: FixedClock, submitted: dict[str, str]
) -> None:
    sign_everything(clock, KEY)
    release(app, clock, KEY)
    path = f"/report/{tokens('report')['refunds-desk@example.com']}"
    settings = runtime(app).governance_settings()
    with unit_of_work(db.session) as session:
        filed = findings.submit_report(
            session,
            path.removeprefix("/report/"),
            application="payments-api",
            report=PROBLEM,
            settings=settings,
            clock=clock,
        )
        clock.advance(timedelta(hours=4))
        findings.triage(session, filed.id, classification="uncovered", actor=BOARD, clock=clock)
    page = client(app).get(path)
    assert page.status_code == 410
    text = words(page.text)
    assert "recorded as finding F-1" in text
    assert PROBLEM.what_happened in text
    assert PROBLEM.could_have_caught in text
    assert "accepted by release-board@example.com on 2026-11-23 13:00 UTC" in text
