"""`gatekeeper users …`, and the demo's accounts signed into through the demo mailbox."""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import User
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import demo
from gatekeeper.web import mailbox
from tests.functional.web_helpers import client, csrf
from tests.support.mail import catcher, point_mail_at, run_worker


def run(runner: FlaskCliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_add_list_deactivate_activate(runner: FlaskCliRunner) -> None:
    code, out, err = run(
        runner, "users", "add", "RM@Example.com", "--name", "Riley", "--role", "release_manager"
    )
    assert code == 0, err
    assert "user rm@example.com (release_manager) added" in out
    code, out, _ = run(
        runner, "users", "add", "admin@example.com", "--name", "A", "--role", "admin"
    )
    assert code == 0
    code, out, _ = run(runner, "users", "list")
    assert out.splitlines()[0].split() == ["admin@example.com", "admin", "active", "A"]
    assert out.splitlines()[1].split()[:3] == ["rm@example.com", "release_manager", "active"]
    code, out, err = run(runner, "users", "deactivate", "rm@example.com")
    assert code == 0, err
    assert "sessions have ended" in out
    code, out, _ = run(runner, "users", "list", "--json")
    rows = {row["email"]: row for row in json.loads(out)}
    assert rows["rm@example.com"]["active"] is False
    assert rows["rm@example.com"]["deactivated_at"] is not None
    assert rows["admin@example.com"]["role"] == "admin"
    assert run(runner, "users", "activate", "rm@example.com")[0] == 0
    _, out, _ = run(runner, "users", "list", "--json")
    assert all(row["active"] for row in json.loads(out))


def test_refusals_are_one_line_errors(runner: FlaskCliRunner) -> None:
    assert run(runner, "users", "add", "a@example.com", "--name", "A", "--role", "admin")[0] == 0
    code, _, err = run(runner, "users", "add", "a@example.com", "--name", "A", "--role", "admin")
    assert (code, err.strip()) == (1, "error: a user a@example.com already exists")
    code, _, err = run(runner, "users", "add", "nope", "--name", "A", "--role", "admin")
    assert code == 1
    assert "not a valid email address" in err
    code, _, err = run(runner, "users", "add", "b@example.com", "--name", "B", "--role", "root")
    assert code == 2
    assert "release_manager" in err
    code, _, err = run(runner, "users", "deactivate", "ghost@example.com")
    assert (code, err.strip()) == (1, "error: no user 'ghost@example.com'")


def test_the_demo_release_manager_signs_in_through_the_mailbox(
    app: Flask, runner: FlaskCliRunner, clock: FixedClock
) -> None:
    code, out, err = run(runner, "demo", "--no-serve")
    assert code == 0, err
    assert f"demo account {demo.DEMO_RELEASE_MANAGER} (release manager)" in out
    assert run(runner, "demo", "--no-serve")[1].count("demo account") == 0, "repeatable"
    with catcher() as box:
        point_mail_at(app, box.port)
        mailbox.attach(app.extensions, box)
        browser = client(app)
        form = browser.get("/login")
        browser.post(
            "/login",
            data={"csrf_token": csrf(form.text), "email": demo.DEMO_RELEASE_MANAGER},
        )
        run_worker(app)
        inbox = browser.get("/dev/mailbox/")
    assert inbox.status_code == 200
    link = re.search(r'class="mail-link" href="http://127.0.0.1:5000(/login/[^"]+)"', inbox.text)
    assert link, "the sign-in email is in the demo mailbox"
    page = browser.get(link.group(1))
    assert "Sign in as Riley Morgan" in page.text
    assert browser.post(link.group(1), data={"csrf_token": csrf(page.text)}).status_code == 302
    dashboard = browser.get("/")
    assert dashboard.status_code == 200
    assert f'data-key="{demo.DEMO_PACKAGE}"' in dashboard.text
    board = browser.get(f"/packages/{demo.DEMO_PACKAGE}")
    assert 'data-testid="remind-now"' in board.text


def test_an_account_single_sign_on_gave_no_role_lists_as_such(runner: FlaskCliRunner) -> None:
    added = run(runner, "users", "add", "ana@example.com", "--name", "Ana", "--role", "admin")
    assert added[0] == 0
    with unit_of_work(db.session) as session:
        session.execute(sa.update(User).values(role=None))
    code, out, err = run(runner, "users", "list")
    assert code == 0, err
    assert out.split() == ["ana@example.com", "no-role", "active", "Ana"]
    assert json.loads(run(runner, "users", "list", "--json")[1])[0]["role"] is None
