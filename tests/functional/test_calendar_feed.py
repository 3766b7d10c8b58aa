"""The freeze calendar page and each person's secret iCalendar feed: made and revoked by its
owner (audited), read without a session, 404 for a wrong or revoked key, and holding nothing
but freezes, blackouts and planned releases."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import icalendar
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, CalendarKey
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import demo_freezes, packages
from tests.functional.web_helpers import MANAGER, REVIEWER, add_staff, client, post, sign_in
from tests.integration.test_freezes import review, write_calendar
from tests.support.governance import approve, checklist_dir, sync

FEED = re.compile(r'data-testid="feed-url">([^<]+)<')


def prepared(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    directory = checklist_dir(tmp_path)
    write_calendar(directory, clock, after=timedelta(days=1))
    (directory / "general-ledger.yaml").write_text(demo_freezes.CHECKLIST, encoding="utf-8")
    sync(app, clock, directory)
    review(clock, 1)
    approve(clock, "general-ledger", 1)
    approve(clock, "payments-api", 7)
    with unit_of_work(db.session) as session:
        for key, state_change in (("2026.12-r1", None), ("2026.12-gone", "cancel")):
            packages.create_package(
                session,
                packages.PackageSpec(
                    key,
                    "Refunds queue",
                    "production",
                    (clock.now() + timedelta(days=5)).date(),
                    (packages.ApplicationSpec("payments-api", "7.4.0", "secret change notes"),),
                ),
                assembler=MANAGER,
                clock=clock,
            )
            if state_change:
                packages.cancel_package(session, key, actor=MANAGER, clock=clock)
    add_staff(clock)


def feed_url(browser: FlaskClient) -> str:
    made = post(browser, "/calendar/key")
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    (url,) = FEED.findall(made.text)
    return url


def events(action: str) -> list[str]:
    db.session.remove()
    return list(db.session.scalars(sa.select(AuditEvent.actor).where(AuditEvent.action == action)))


def test_the_page_lists_windows_and_the_dashboard_links_to_it(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    browser = sign_in(app, REVIEWER)
    assert 'href="/calendar/"' in browser.get("/").text
    page = browser.get("/calendar/").text
    assert 'data-id="change-freeze"' in page
    assert 'data-id="month-end-close" data-owner="general-ledger"' in page
    assert "Finance closes the books" in page


def test_a_person_makes_a_feed_link_that_works_without_a_session(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    url = feed_url(sign_in(app, MANAGER))
    assert "/calendar.ics?key=gkcal_" in url
    parts = urlsplit(url)
    answer = client(app).get(f"{parts.path}?{parts.query}")
    assert answer.status_code == 200
    assert answer.mimetype == "text/calendar"
    assert answer.headers["X-Robots-Tag"] == "noindex"
    parsed = icalendar.Calendar.from_ical(answer.data)
    found = {str(e["SUMMARY"]): e for e in parsed.walk("VEVENT")}
    assert set(found) == {
        "Freeze: Change freeze",
        "Blackout of general-ledger: Month-end close",
        "Release 2026.12-r1: Refunds queue",
    }, "cancelled packages are not planned releases"
    blackout = found["Blackout of general-ledger: Month-end close"]
    assert blackout["RRULE"].to_ical() == b"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1"
    assert blackout["DTSTART"].params["TZID"] == "Europe/Paris"
    assert parsed.walk("VTIMEZONE"), "the zone travels with the feed"
    assert b"secret change notes" not in answer.data
    assert b"7.4.0" not in answer.data
    assert MANAGER.encode() not in answer.data
    assert events("calendar_key.created") == [MANAGER]


def test_wrong_replaced_and_revoked_keys_get_404(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    browser = sign_in(app, MANAGER)
    anonymous = client(app)
    assert anonymous.get("/calendar.ics").status_code == 404
    assert anonymous.get("/calendar.ics?key=gkcal_nope").status_code == 404
    assert anonymous.get("/calendar.ics?key=" + "gkcal_" + "x" * 200).status_code == 404
    first = urlsplit(feed_url(browser))
    second = urlsplit(feed_url(browser))
    assert anonymous.get(f"{first.path}?{first.query}").status_code == 404, "replaced"
    assert anonymous.get(f"{second.path}?{second.query}").status_code == 200
    page = browser.get("/calendar/").text
    assert 'data-testid="feed-key-active"' in page
    assert "gkcal_" not in page, "the link is shown once"
    revoked = post(browser, "/calendar/key/revoke")
    assert revoked.status_code == 302
    assert anonymous.get(f"{second.path}?{second.query}").status_code == 404
    assert events("calendar_key.revoked") == [MANAGER, MANAGER]
    assert post(browser, "/calendar/key/revoke").status_code == 302
    assert events("calendar_key.revoked") == [MANAGER, MANAGER], "nothing to revoke: no event"
    db.session.remove()
    hashes = db.session.scalars(sa.select(CalendarKey.key_hash)).all()
    assert all(len(h) == 64 and "gkcal" not in h for h in hashes), "only hashes are stored"


def test_the_feed_page_needs_a_session(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    prepared(app, clock, tmp_path)
    assert client(app).get("/calendar/").status_code == 302
