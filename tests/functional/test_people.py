"""Absences through every door: `gatekeeper people`, the managers' page, and "I am away until …"
on an emailed sign-off link; then what deputies and the away person see."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import Absence
from gatekeeper.domain.clock import FixedClock
from tests.functional.web_helpers import ADMIN, MANAGER, REVIEWER, add_staff, client, csrf, post
from tests.functional.web_helpers import sign_in as signed_in_as
from tests.support.deputies import LEAD, LEAD_DEPUTY, REFUNDS, SEC, SEC_DEPUTY, with_deputies
from tests.support.flows import decisions_for
from tests.support.governance import tokens

KEY = "2026.12-people"


def run(runner: FlaskCliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def submitted(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    from tests.support.deputies import submit_with_links

    with_deputies(app, clock, tmp_path)
    submit_with_links(app, clock, KEY)


def test_people_away_back_and_list(
    app: Flask, runner: FlaskCliRunner, clock: FixedClock, tmp_path: Path
) -> None:
    submitted(app, clock, tmp_path)
    own = tokens("s")[SEC]
    code, out, err = run(
        runner, "people", "away", SEC.upper(), "--until", "2026-12-20", "--note", "conference"
    )
    assert code == 0, err
    assert (
        out.strip() == f"{SEC} away from 2026-11-23T09:00:00+00:00 until 2026-12-20T00:00:00+00:00"
    )
    assert client(app).get(f"/s/{own}").text.count("Handed to your deputy") == 1
    assert SEC_DEPUTY in tokens("s")
    code, out, _ = run(
        runner, "people", "away", LEAD, "--from", "2026-12-01", "--until", "2026-12-03T12:00"
    )
    assert code == 0
    _, out, _ = run(runner, "people", "list", "--json")
    rows = json.loads(out)
    assert [(r["person"], r["in_force"], r["recorded_by"]) for r in rows] == [
        (SEC, True, "cli"),
        (LEAD, False, "cli"),
    ]
    _, out, _ = run(runner, "people", "list")
    assert out.splitlines()[0].startswith(f"{SEC}  away  ")
    code, out, err = run(runner, "people", "back", SEC)
    assert code == 0, err
    assert out.strip() == f"{SEC} is back (1 absence(s) ended)"
    code, _, err = run(runner, "people", "back", SEC)
    assert code == 1
    assert err.strip() == f"error: {SEC} is not recorded as away"
    code, _, err = run(runner, "people", "away", "nobody", "--until", "2026-12-20")
    assert (code, err.strip()) == (1, "error: 'nobody' is not a valid email address")
    code, _, err = run(runner, "people", "away", SEC, "--until", "soon")
    assert code == 1
    assert "--until 'soon' is not a date" in err


def test_the_managers_page_records_and_ends_absences(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    add_staff(clock)
    submitted(app, clock, tmp_path)
    for email in (REVIEWER,):
        assert signed_in_as(app, email).get("/people/").status_code == 403
    browser = signed_in_as(app, MANAGER)
    page = browser.get("/people/")
    assert page.status_code == 200
    assert 'data-testid="no-absences"' in page.text
    assert 'data-testid="nav-people"' in page.text
    bad = post(browser, "/people/", {"email": REFUNDS, "until": "2026-11-01"})
    assert bad.status_code == 422
    assert "an absence must end after it starts" in bad.text
    done = post(browser, "/people/", {"email": REFUNDS, "until": "2026-12-20", "note": "leave"})
    assert done.status_code == 302
    page = browser.get("/people/").text
    assert f"{REFUNDS} is recorded as away until 2026-12-20." in page
    assert f'data-person="{REFUNDS}"' in page
    board = browser.get(f"/packages/{KEY}").text
    assert "SIGNER_AWAY" in board or "is away until 2026-12-20" in board
    absence = db.session.scalar(sa.select(Absence.id).where(Absence.person == REFUNDS))
    db.session.rollback()
    assert post(browser, f"/people/{absence}/end").status_code == 302
    assert "absence is ended" in browser.get("/people/").text
    again = post(browser, f"/people/{absence}/end")
    assert again.status_code == 302
    assert "over already" in browser.get("/people/").text
    assert signed_in_as(app, ADMIN).get("/people/").status_code == 200


def test_away_from_the_link_hands_it_to_the_deputy_who_signs_for_the_person(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    add_staff(clock)
    submitted(app, clock, tmp_path)
    path = f"/s/{tokens('s')[LEAD]}"
    browser = client(app)
    page = browser.get(path)
    assert 'data-testid="away-form"' in page.text
    missing = browser.post(f"{path}/away", data={"csrf_token": csrf(page.text)})
    assert missing.status_code == 422
    assert "This field is required." in missing.text
    done = browser.post(f"{path}/away", data={"csrf_token": csrf(page.text), "until": "2026-12-20"})
    assert done.status_code == 200, done.text
    assert "Recorded: you are away until 2026-12-20" in done.text
    assert LEAD_DEPUTY in done.text
    handed = browser.get(path)
    assert handed.status_code == 410
    assert "Handed to your deputy" in handed.text
    replay = browser.post(
        f"{path}/away", data={"csrf_token": csrf(page.text), "until": "2026-12-20"}
    )
    assert replay.status_code == 410
    deputy_path = f"/s/{tokens('s')[LEAD_DEPUTY]}"
    deputy = client(app)
    sign_page = deputy.get(deputy_path).text
    assert f"You sign as deputy <strong>for {LEAD}</strong>" in sign_page
    token = tokens("s")[LEAD_DEPUTY]
    ((request_id, decision),) = decisions_for(app, token, clock).items()
    form = {
        "csrf_token": csrf(sign_page),
        f"r{request_id}-decision": "confirmed",
        **{f"r{request_id}-scenario-{i}": "on" for i in decision.scenarios_confirmed},
    }
    assert deputy.post(deputy_path, data=form).status_code == 200
    manager = signed_in_as(app, MANAGER)
    board = manager.get(f"/packages/{KEY}").text
    assert f'by {LEAD_DEPUTY} <span data-testid="on-behalf-of">for {LEAD}</span>' in board
    timeline = manager.get(f"/packages/{KEY}/timeline").text
    assert f"by {LEAD_DEPUTY} for {LEAD}" in timeline
    evidence = manager.get(f"/packages/{KEY}/evidence.html").text
    assert f"{LEAD_DEPUTY} for {LEAD}" in evidence


def test_saying_away_twice_from_a_link_without_deputy_is_refused_on_the_page(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    submitted(app, clock, tmp_path)
    path = f"/s/{tokens('s')[REFUNDS]}"
    browser = client(app)
    page = browser.get(path).text
    first = browser.post(f"{path}/away", data={"csrf_token": csrf(page), "until": "2026-12-20"})
    assert first.status_code == 200
    assert "names no deputy who can sign in your place" in first.text
    again = browser.post(f"{path}/away", data={"csrf_token": csrf(page), "until": "2026-12-22"})
    assert again.status_code == 422
    assert "you are already recorded as away until 2026-12-20" in again.text
    assert 'data-testid="away-form"' in again.text
